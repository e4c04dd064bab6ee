//! Sequence charts of a run, drawn from its v1 trace (`docs/TRACE.md`; `docs/CHARTS.md` says
//! what every mark means).
//!
//! Hosts are vertical lifelines in the trace header's order; time flows down; every datagram
//! copy is an arrow from its sender's lifeline at the send time to its receiver's at the
//! receive time, labelled with its decoded operation. A copy the loss fault ate stops half-way
//! with a cross; one the receiver dropped ends with a red cross and the drop reason; duplicates
//! and corrupted copies are drawn dashed. Commands, events and notes are marks on the lifelines,
//! and a host's down time (from its crash to its restart) is a band. Long quiet stretches are
//! compressed and marked.
//!
//! The output is one self-contained file: SVG, or HTML with the SVG inline plus a small script
//! for hover details and a time/host filter. Nothing is loaded from the network.
//!
//! Long runs can be cut to a window (`from_us`, `to_us`) and a host set; at most
//! [`ChartOptions::max_arrows`] arrows are drawn, and the chart stops at the first one left
//! out, saying so ([`Summary::left_out_line`]).
//!
//! # Examples
//! ```
//! use pavillion_scenarios::chart::{render, ChartFormat, ChartOptions};
//! let trace = concat!(
//!     r#"{"type":"header","format":"pavillion-trace","version":1,"hosts":["#,
//!     r#"{"name":"c1","role":"client","addrs":["10.0.0.2:4000"]},"#,
//!     r#"{"name":"server","role":"server","addrs":["10.0.0.1:1783"]}]}"#, "\n",
//!     r#"{"t":0,"type":"datagram","host":"c1","id":0,"from":"10.0.0.2:4000","#,
//!     r#""to":"10.0.0.1:1783","to_host":"server","len":40,"fate":"sent","delay_us":0,"#,
//!     r#""label":"nonce_request"}"#, "\n",
//!     r#"{"t":1000,"type":"receive","host":"server","id":0,"from":"10.0.0.2:4000","#,
//!     r#""to":"10.0.0.1:1783","len":40,"outcome":"accepted","reason":null}"#, "\n",
//! );
//! let chart = render(trace, ChartFormat::Svg, &ChartOptions::default()).unwrap();
//! assert!(chart.text.contains(r#"class="lifeline" data-host="server""#));
//! assert!(chart.text.contains(r#"data-label="nonce_request""#));
//! assert_eq!(chart.summary.arrows, 1);
//! ```

use core::fmt;
use std::path::Path;

mod html;
mod layout;
mod svg;
mod trace;

pub use trace::TraceError;

/// The most arrows a chart draws unless told otherwise: a browser still scrolls it smoothly.
pub const MAX_ARROWS: usize = 5_000;

/// What part of a trace to draw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChartOptions {
    /// Leave out what happened before this simulated time (µs).
    pub from_us: Option<u64>,
    /// Leave out what happened after this simulated time (µs). A datagram sent in the window
    /// is drawn to its arrival even after it.
    pub to_us: Option<u64>,
    /// Draw only these hosts' lifelines, and only datagrams between them.
    pub hosts: Option<Vec<String>>,
    /// Draw at most this many arrows.
    pub max_arrows: usize,
}

impl Default for ChartOptions {
    fn default() -> Self {
        ChartOptions {
            from_us: None,
            to_us: None,
            hosts: None,
            max_arrows: MAX_ARROWS,
        }
    }
}

impl ChartOptions {
    /// Options from the command line's units: milliseconds, and a comma-separated host list.
    pub fn from_cli(from_ms: Option<f64>, to_ms: Option<f64>, hosts: Option<&str>) -> Self {
        let us = |ms: f64| (ms.max(0.0) * 1000.0).round() as u64;
        ChartOptions {
            from_us: from_ms.map(us),
            to_us: to_ms.map(us),
            hosts: hosts.map(|h| {
                h.split(',')
                    .map(str::trim)
                    .filter(|h| !h.is_empty())
                    .map(String::from)
                    .collect()
            }),
            max_arrows: MAX_ARROWS,
        }
    }
}

/// The kind of file to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChartFormat {
    /// A standalone SVG picture (hover text as `<title>` tooltips).
    Svg,
    /// An HTML page with the SVG inline, a time/host filter and a details pane.
    Html,
}

impl ChartFormat {
    /// The format a file name asks for: `.svg`, or `.html`/`.htm`.
    pub fn from_path(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "svg" => Some(ChartFormat::Svg),
            "html" | "htm" => Some(ChartFormat::Html),
            _ => None,
        }
    }
}

/// What a chart shows and what it left out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Arrows drawn.
    pub arrows: usize,
    /// Commands, events and notes drawn.
    pub marks: usize,
    /// Datagram copies outside the time window.
    pub left_out_time: usize,
    /// Datagram copies from or to a host outside the host set.
    pub left_out_hosts: usize,
    /// Datagram copies left out by the arrow cap.
    pub capped: usize,
    /// Where the cap cut the chart (µs): nothing from then on is drawn.
    pub cut_at_us: Option<u64>,
}

impl Summary {
    /// One line saying what the cap left out, if it left out anything.
    pub fn left_out_line(&self) -> Option<String> {
        let cut = self.cut_at_us?;
        Some(format!(
            "cut at {}: {} more datagram copies not drawn (at most {} arrows); \
             narrow the chart with --from/--to or --hosts",
            svg::time(cut),
            self.capped,
            self.arrows
        ))
    }
}

/// A drawn chart.
#[derive(Clone, Debug)]
pub struct Chart {
    /// The file's contents.
    pub text: String,
    /// What it shows and what it left out.
    pub summary: Summary,
}

/// Why a chart could not be drawn.
#[derive(Debug)]
#[non_exhaustive]
pub enum ChartError {
    /// The trace is not a v1 trace, or a line of it is broken.
    Trace(TraceError),
    /// `--hosts` names a host the trace does not have.
    UnknownHost {
        /// The name given.
        host: String,
        /// The trace's hosts, comma-separated.
        known: String,
    },
    /// The output file name ends in neither `.svg` nor `.html`.
    Format(String),
    /// Reading the trace or writing the chart failed.
    Io(String, std::io::Error),
}

impl fmt::Display for ChartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChartError::Trace(e) => write!(f, "bad trace: {e}"),
            ChartError::UnknownHost { host, known } => {
                write!(f, "no host `{host}` in the trace (its hosts: {known})")
            }
            ChartError::Format(p) => {
                write!(f, "`{p}`: a chart file name ends in .svg or .html")
            }
            ChartError::Io(what, e) => write!(f, "{what}: {e}"),
        }
    }
}

impl core::error::Error for ChartError {}

impl From<TraceError> for ChartError {
    fn from(e: TraceError) -> Self {
        ChartError::Trace(e)
    }
}

/// Draws the chart of a v1 trace's text.
///
/// # Errors
/// [`ChartError::Trace`] if the text is not a v1 trace (naming the bad line);
/// [`ChartError::UnknownHost`] if the host set names a host the trace lacks.
pub fn render(trace: &str, format: ChartFormat, opts: &ChartOptions) -> Result<Chart, ChartError> {
    let file = trace::parse(trace)?;
    let scene = layout::build(&file, opts)?;
    let text = match format {
        ChartFormat::Svg => {
            let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
            s.push_str(&svg::write(&scene));
            s
        }
        ChartFormat::Html => html::write(&scene),
    };
    Ok(Chart {
        text,
        summary: scene.summary,
    })
}

/// Draws the chart of a v1 trace's text into `out`, in the format its extension names.
///
/// # Errors
/// As [`render`]; [`ChartError::Format`] for an extension other than `.svg` or `.html`;
/// [`ChartError::Io`] if the file cannot be written.
pub fn write_file(trace: &str, out: &Path, opts: &ChartOptions) -> Result<Summary, ChartError> {
    let format =
        ChartFormat::from_path(out).ok_or_else(|| ChartError::Format(out.display().to_string()))?;
    let chart = render(trace, format, opts)?;
    std::fs::write(out, chart.text)
        .map_err(|e| ChartError::Io(format!("cannot write {}", out.display()), e))?;
    Ok(chart.summary)
}

#[cfg(test)]
mod tests;
