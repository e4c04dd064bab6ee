//! Plots of a runner's rows (`--plot FILE.svg`), drawn with `plotters` as SVG.
//!
//! `FILE.svg` has one line per scenario and suite: on the left the delivery latency's p50,
//! p90 and p99 over every run of the row (simulated time, log scale: latencies go from a
//! millisecond on a clean link to minutes across a partition), on the right the
//! retransmissions per run (log scale too; a row with none has no bar). With 100 seeds or more
//! (the soak), `FILE-latency.svg` is a histogram of every delivery's latency over every row,
//! with the percentiles marked. `docs/CHARTS.md` shows both.
//!
//! Percentiles here come from a [`LatencyHistogram`] per row (20 buckets per decade, so at most
//! about 11% below the exact value): a soak of a thousand seeds then keeps a few kilobytes per row
//! instead of every sample.

use core::fmt;
use core::time::Duration;
use std::path::{Path, PathBuf};

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::report::Row;

/// Buckets per decade of a [`LatencyHistogram`].
const PER_DECADE: usize = 20;
/// Decades a [`LatencyHistogram`] covers from 1 µs: up to 10^10 µs, almost three hours.
const DECADES: usize = 10;
const BUCKETS: usize = PER_DECADE * DECADES;
/// With this many seeds or more, `--plot` also draws the latency histogram.
pub const SOAK_SEEDS: usize = 100;

/// Counts of latencies in log-spaced buckets: bucket `i` holds latencies from
/// `10^(i/20)` µs (inclusive) to `10^((i+1)/20)` µs; 0 µs counts in the first, anything past the
/// last bucket in the last.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LatencyHistogram {
    counts: Vec<u64>,
    total: u64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram {
            counts: vec![0; BUCKETS],
            total: 0,
        }
    }
}

impl LatencyHistogram {
    /// Counts one latency, in microseconds.
    pub fn add(&mut self, us: u64) {
        let i = if us <= 1 {
            0
        } else {
            ((us as f64).log10() * PER_DECADE as f64).floor() as usize
        };
        if let Some(c) = self.counts.get_mut(i.min(BUCKETS - 1)) {
            *c += 1;
            self.total += 1;
        }
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        for (c, o) in self.counts.iter_mut().zip(&other.counts) {
            *c += o;
        }
        self.total += other.total;
    }

    /// How many latencies were counted.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The nearest-rank `percent` percentile, as the lower edge of its bucket (so at most
    /// about 11% below the exact value, and exact for the round latencies of a clean
    /// simulated link); `None` when empty.
    pub fn percentile(&self, percent: u64) -> Option<Duration> {
        if self.total == 0 {
            return None;
        }
        let rank = (self.total * percent.min(100)).div_ceil(100).max(1);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (lo, _) = edges(i);
                return Some(Duration::from_micros(lo.round() as u64));
            }
        }
        None
    }

    /// The non-empty buckets: lower edge and upper edge (µs) and count.
    pub fn buckets(&self) -> impl Iterator<Item = (f64, f64, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(i, c)| {
                let (lo, hi) = edges(i);
                (lo, hi, *c)
            })
    }
}

/// Bucket `i`'s edges in µs.
fn edges(i: usize) -> (f64, f64) {
    let e = |k: usize| 10f64.powf(k as f64 / PER_DECADE as f64);
    (e(i), e(i + 1))
}

/// Why a plot could not be written.
#[derive(Debug)]
pub struct PlotError(String);

impl fmt::Display for PlotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl core::error::Error for PlotError {}

fn err<E: fmt::Display>(path: &Path) -> impl Fn(E) -> PlotError + '_ {
    move |e| PlotError(format!("cannot draw {}: {e}", path.display()))
}

/// The histogram's file beside `path`: `FILE.svg` gives `FILE-latency.svg`.
pub fn histogram_path(path: &Path) -> PathBuf {
    let stem = path
        .file_stem()
        .map_or_else(|| "plot".into(), |s| s.to_string_lossy().into_owned());
    path.with_file_name(format!("{stem}-latency.svg"))
}

/// Writes the plot of `rows` to `path` (SVG) and, with at least [`SOAK_SEEDS`] seeds, the
/// latency histogram beside it ([`histogram_path`]). Returns the files written.
///
/// # Errors
/// If a file cannot be written.
pub fn write(rows: &[Row], seeds: usize, path: &Path) -> Result<Vec<PathBuf>, PlotError> {
    let mut written = vec![path.to_path_buf()];
    percentiles(rows, seeds, path)?;
    if seeds >= SOAK_SEEDS {
        let mut all = LatencyHistogram::default();
        for r in rows {
            all.merge(&r.latency_histogram);
        }
        let hist = histogram_path(path);
        histogram(&all, rows.len(), seeds, &hist)?;
        written.push(hist);
    }
    Ok(written)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

const ROW_PX: u32 = 18;

fn percentiles(rows: &[Row], seeds: usize, path: &Path) -> Result<(), PlotError> {
    let n = rows.len().max(1);
    let height = 140 + ROW_PX * n as u32;
    let root = SVGBackend::new(path, (1200, height)).into_drawing_area();
    root.fill(&WHITE).map_err(err(path))?;
    let root = root
        .titled(
            &format!("Scenarios over {seeds} seed(s): delivery latency and retransmissions"),
            ("sans-serif", 18),
        )
        .map_err(err(path))?;
    let (left, right) = root.split_horizontally(760);
    let names: Vec<String> = rows
        .iter()
        .map(|r| format!("{} {}", r.scenario, r.suite.name()))
        .collect();
    // The first row at the top, as in the table: row `i` is drawn at segment `n - 1 - i`.
    let flip = |i: usize| n.saturating_sub(1 + i);
    let name = |v: &SegmentValue<usize>| match v {
        SegmentValue::CenterOf(i) | SegmentValue::Exact(i) if *i < n => {
            names.get(flip(*i)).cloned().unwrap_or_default()
        }
        _ => String::new(),
    };

    let pcts: Vec<Option<[f64; 3]>> = rows
        .iter()
        .map(|r| {
            let h = &r.latency_histogram;
            Some([
                ms(h.percentile(50)?),
                ms(h.percentile(90)?),
                ms(h.percentile(99)?),
            ])
        })
        .collect();
    let lo = pcts
        .iter()
        .flatten()
        .map(|p| p[0])
        .fold(f64::INFINITY, f64::min);
    let hi = pcts.iter().flatten().map(|p| p[2]).fold(0.0, f64::max);
    let (lo, hi) = if lo.is_finite() && hi > 0.0 {
        ((lo / 2.0).max(1e-3), hi * 2.0)
    } else {
        (0.1, 1000.0)
    };
    let mut chart = ChartBuilder::on(&left)
        .caption(
            "delivery latency, ms of simulated time (log)",
            ("sans-serif", 14),
        )
        .margin(8)
        .x_label_area_size(30)
        .y_label_area_size(230)
        .build_cartesian_2d((lo..hi).log_scale(), (0..n).into_segmented())
        .map_err(err(path))?;
    chart
        .configure_mesh()
        .y_labels(n)
        .y_label_formatter(&name)
        .x_desc("ms")
        .draw()
        .map_err(err(path))?;
    let at = |i: usize| SegmentValue::CenterOf(flip(i));
    let with = |f: fn(&[f64; 3]) -> f64| {
        pcts.iter()
            .enumerate()
            .filter_map(move |(i, p)| p.as_ref().map(|p| (f(p), i)))
    };
    chart
        .draw_series(with(|p| p[0]).map(|(x, i)| {
            PathElement::new(
                vec![(x, at(i)), (pcts[i].map_or(x, |p| p[2]), at(i))],
                BLACK.mix(0.4),
            )
        }))
        .map_err(err(path))?;
    let p50 = BLUE;
    let p90 = RGBColor(230, 140, 0);
    let p99 = RED;
    chart
        .draw_series(with(|p| p[0]).map(|(x, i)| Circle::new((x, at(i)), 4, p50.filled())))
        .map_err(err(path))?
        .label("p50")
        .legend(move |(x, y)| Circle::new((x, y), 4, p50.filled()));
    chart
        .draw_series(with(|p| p[1]).map(|(x, i)| TriangleMarker::new((x, at(i)), 5, p90.filled())))
        .map_err(err(path))?
        .label("p90")
        .legend(move |(x, y)| TriangleMarker::new((x, y), 5, p90.filled()));
    chart
        .draw_series(with(|p| p[2]).map(|(x, i)| Cross::new((x, at(i)), 4, p99.stroke_width(2))))
        .map_err(err(path))?
        .label("p99")
        .legend(move |(x, y)| Cross::new((x, y), 4, p99.stroke_width(2)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.3))
        .draw()
        .map_err(err(path))?;

    let retx: Vec<f64> = rows
        .iter()
        .map(|r| r.retransmissions as f64 / r.seeds.max(1) as f64)
        .collect();
    let top = retx.iter().copied().fold(1.0, f64::max) * 2.0;
    let mut chart = ChartBuilder::on(&right)
        .caption("retransmissions per run (log)", ("sans-serif", 14))
        .margin(8)
        .x_label_area_size(30)
        .y_label_area_size(10)
        .build_cartesian_2d((0.5..top).log_scale(), (0..n).into_segmented())
        .map_err(err(path))?;
    chart
        .configure_mesh()
        .y_labels(n)
        .y_label_formatter(&|_| String::new())
        .draw()
        .map_err(err(path))?;
    chart
        .draw_series(
            retx.iter()
                .enumerate()
                .filter(|(_, v)| **v > 0.5)
                .map(|(i, v)| {
                    let mut bar = Rectangle::new(
                        [
                            (0.5, SegmentValue::Exact(flip(i))),
                            (*v, SegmentValue::Exact(flip(i) + 1)),
                        ],
                        RGBColor(70, 110, 170).filled(),
                    );
                    bar.set_margin(3, 3, 0, 0);
                    bar
                }),
        )
        .map_err(err(path))?;
    chart
        .draw_series(retx.iter().enumerate().map(|(i, v)| {
            Text::new(
                format!(" {v:.0}"),
                (v.max(0.5), SegmentValue::CenterOf(flip(i))),
                TextStyle::from(("sans-serif", 11).into_font())
                    .pos(Pos::new(HPos::Left, VPos::Center)),
            )
        }))
        .map_err(err(path))?;
    root.present().map_err(err(path))
}

fn histogram(
    all: &LatencyHistogram,
    rows: usize,
    seeds: usize,
    path: &Path,
) -> Result<(), PlotError> {
    let root = SVGBackend::new(path, (1000, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(err(path))?;
    let buckets: Vec<(f64, f64, u64)> = all
        .buckets()
        .map(|(lo, hi, c)| (lo / 1e3, hi / 1e3, c))
        .collect();
    let lo = buckets.first().map_or(0.1, |b| b.0);
    let hi = buckets.last().map_or(1000.0, |b| b.1);
    let peak = buckets.iter().map(|b| b.2).max().unwrap_or(1);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "delivery latency of {} deliveries, {rows} scenario/suite rows x {seeds} seeds",
                all.count()
            ),
            ("sans-serif", 16),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((lo..hi).log_scale(), (0.8..peak as f64 * 2.0).log_scale())
        .map_err(err(path))?;
    chart
        .configure_mesh()
        .x_desc("ms of simulated time (log; 20 buckets per decade)")
        .y_desc("deliveries (log)")
        .draw()
        .map_err(err(path))?;
    chart
        .draw_series(buckets.iter().map(|&(l, h, c)| {
            Rectangle::new([(l, 0.8), (h, c as f64)], RGBColor(70, 110, 170).filled())
        }))
        .map_err(err(path))?;
    for (p, color) in [(50, BLUE), (90, RGBColor(230, 140, 0)), (99, RED)] {
        if let Some(d) = all.percentile(p) {
            let x = ms(d);
            chart
                .draw_series(core::iter::once(PathElement::new(
                    vec![(x, 0.8), (x, peak as f64 * 1.5)],
                    color.stroke_width(2),
                )))
                .map_err(err(path))?
                .label(format!("p{p} {}", crate::report::duration(d)))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.3))
        .draw()
        .map_err(err(path))?;
    root.present().map_err(err(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{find, Outcome, Suite};

    #[test]
    fn histogram_percentiles_are_within_a_bucket() {
        let mut h = LatencyHistogram::default();
        assert_eq!(h.percentile(50), None);
        for us in 1..=1000u64 {
            h.add(us * 1000);
        }
        h.add(0);
        assert_eq!(h.count(), 1001);
        for (p, exact) in [(50u64, 500_000f64), (90, 900_000.0), (99, 990_000.0)] {
            let got = h.percentile(p).unwrap().as_micros() as f64;
            assert!(
                (0.88..=1.0).contains(&(got / exact)),
                "p{p}: {got} vs {exact}"
            );
        }
        let mut g = LatencyHistogram::default();
        g.add(u64::MAX);
        h.merge(&g);
        assert_eq!(h.count(), 1002);
        assert_eq!(
            h.percentile(100),
            Some(Duration::from_micros(8_912_509_381))
        );
        assert_eq!(h.buckets().map(|b| b.2).sum::<u64>(), 1002);
    }

    fn rows(seeds: u64) -> Vec<Row> {
        let mut out = Vec::new();
        for (name, base) in [("clean", 1_000u64), ("loss-10", 5_000)] {
            let mut row = Row::new(find(name).unwrap(), Suite::Psk);
            for seed in 1..=seeds {
                let o = Outcome {
                    latencies_us: (0..50).map(|i| base + i * 100 * seed).collect(),
                    retransmissions: if name == "clean" { 0 } else { 7 },
                    ..Outcome::default()
                };
                row.add(seed, &o);
            }
            out.push(row);
        }
        out
    }

    #[test]
    fn the_plot_names_every_row_and_the_soak_adds_a_histogram() {
        let dir = std::env::temp_dir().join(format!("pav-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("p.svg");
        let written = write(&rows(3), 3, &path).unwrap();
        assert_eq!(written, vec![path.clone()]);
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..60]);
        for text in [
            "clean psk",
            "loss-10 psk",
            "p50",
            "p90",
            "p99",
            "retransmissions",
        ] {
            assert!(svg.contains(text), "{text}");
        }
        // One bar: clean has no retransmission.
        assert!(!histogram_path(&path).exists());

        let written = write(&rows(100), 100, &path).unwrap();
        let hist = dir.join("p-latency.svg");
        assert_eq!(written, [path.clone(), hist.clone()]);
        let svg = std::fs::read_to_string(&hist).unwrap();
        assert!(svg.contains("10000 deliveries"), "{svg}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
