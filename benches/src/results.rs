//! Machine-readable results: every figure a comparison needs, under a stable key, so that
//! `benches/peers/compare-all.sh` can put our figures beside quinn's and Zenoh's measured in
//! the same run without parsing the human table.
//!
//! A row records its figure with [`record`] as it is measured; `compare --results` prints
//! them all at the end, one per line:
//!
//! ```text
//! result<TAB>key<TAB>value<TAB>unit
//! ```
//!
//! The peer programs under `benches/peers/` print the same lines. Keys are lowercase words
//! joined by `_`; the list of keys and what each measures is in `benches/README.md`.
//!
//! # Examples
//! ```
//! use pavillion_benches::results;
//! results::record("raw_udp_pingpong_64", 55_000.0, "rt/s");
//! assert!(results::lines().iter().any(|l| l.starts_with("result\traw_udp_pingpong_64\t")));
//! ```

use std::sync::Mutex;

/// One recorded figure.
#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    /// The stable key, for example `rpc_handler_64_noise`.
    pub key: String,
    /// The value, in `unit`.
    pub value: f64,
    /// The unit, for example `calls/s`.
    pub unit: String,
}

static FIGURES: Mutex<Vec<Figure>> = Mutex::new(Vec::new());

/// Records a figure under `key`; a later figure under the same key replaces it (a row that
/// measures in several slices records its final figure).
pub fn record(key: &str, value: f64, unit: &str) {
    let mut figures = FIGURES.lock().unwrap_or_else(|e| e.into_inner());
    figures.retain(|f| f.key != key);
    figures.push(Figure {
        key: key.to_owned(),
        value,
        unit: unit.to_owned(),
    });
}

/// Every figure recorded so far, in the order first recorded.
pub fn figures() -> Vec<Figure> {
    FIGURES.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// The figures as `result\tkey\tvalue\tunit` lines.
pub fn lines() -> Vec<String> {
    figures()
        .iter()
        .map(|f| format!("result\t{}\t{:.3}\t{}", f.key, f.value, f.unit))
        .collect()
}
