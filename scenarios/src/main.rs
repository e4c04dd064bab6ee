//! The scenario runner: replays every scenario (or some) over a set of seeds and every suite,
//! prints a table, and exits with status 1 if any assertion failed.
//!
//! Runs are independent simulations, so they are spread over the machine's cores; the table
//! does not depend on how many there are.

use core::sync::atomic::{AtomicUsize, Ordering};
use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Instant as WallClock;

use clap::builder::PossibleValuesParser;
use clap::error::ErrorKind;
use clap::{CommandFactory as _, Parser};
use pavillion_scenarios::chart::{self, ChartOptions};
use pavillion_scenarios::report::{self, Row};
use pavillion_scenarios::{
    names, pcap, selects, Outcome, Params, Scenario, Suite, GROUPS, SCENARIOS,
};

const AFTER_HELP: &str = "\
Examples:
  pavillion-scenarios                          every scenario, suite and default seed
  pavillion-scenarios --only loss-50 --seeds 20
  pavillion-scenarios --only durable           every durable-* scenario
  pavillion-scenarios --only nat-rebind --suite ecc --seed 7 --trace run.jsonl
  pavillion-scenarios --only clean --suite psk --seed 1 --pcap run.pcapng --keylog run.keys
  pavillion-scenarios --seeds 1000             the soak: a thousand seeds of everything
  pavillion-scenarios --only loss-10 --suite psk --seed 1 --chart run.html
  pavillion-scenarios chart run.jsonl -o run.svg --from 0 --to 500 --hosts c1,server
  pavillion-scenarios --only clean --only loss-30 --seeds 100 --plot runs.svg

Exit status: 0 if every assertion held, 1 if any failed, 2 for bad arguments.";

/// Replays Pavillion network scenarios over many seeds in simulated time.
#[derive(Debug, Parser)]
#[command(
    name = "pavillion-scenarios",
    version,
    after_help = AFTER_HELP,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    /// Something other than running scenarios.
    #[command(subcommand)]
    command: Option<Command>,

    /// List the scenarios and exit.
    #[arg(long)]
    list: bool,

    /// Run only this scenario, or this group of scenarios (`durable`: every durable-*
    /// scenario); repeat the flag for several.
    #[arg(long, value_name = "NAME", value_parser = PossibleValuesParser::new(names().chain(GROUPS.iter().copied())))]
    only: Vec<String>,

    /// Run seeds 1 to N.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 3,
        value_parser = clap::value_parser!(u64).range(1..),
        conflicts_with = "seed"
    )]
    seeds: u64,

    /// Run this one seed only.
    #[arg(long, value_name = "S")]
    seed: Option<u64>,

    /// Run this suite only (default: every suite of the build).
    #[arg(long, value_enum)]
    suite: Option<Suite>,

    /// Replace every scenario's link loss with this probability, in 0..=1.
    #[arg(long, value_name = "P", value_parser = probability)]
    loss: Option<f64>,

    /// Write the decoded trace of the run (JSON lines, format version 1: docs/TRACE.md) to
    /// FILE; needs exactly one run (one --only scenario, one seed, one suite).
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,

    /// Write every datagram copy of the run to FILE as pcapng (simulated time; each packet's
    /// comment is its fate: sent, lost, duplicate, corrupted, blocked); needs exactly one run.
    #[arg(long, value_name = "FILE")]
    pcap: Option<PathBuf>,

    /// Write the session secrets of the run to FILE in key log format (docs/DECODE.md §2),
    /// for Wireshark with wireshark/pavillion.lua; needs exactly one run.
    #[arg(long, value_name = "FILE")]
    keylog: Option<PathBuf>,

    /// Draw the run's sequence chart to FILE (.svg, or .html with a filter and hover details);
    /// needs exactly one run.
    #[arg(long, value_name = "FILE")]
    chart: Option<PathBuf>,

    /// Start the chart at this simulated time, in milliseconds.
    #[arg(long, value_name = "MS", requires = "chart", value_parser = millis)]
    chart_from: Option<f64>,

    /// End the chart at this simulated time, in milliseconds.
    #[arg(long, value_name = "MS", requires = "chart", value_parser = millis)]
    chart_to: Option<f64>,

    /// Draw only these hosts (comma-separated names) and the datagrams between them.
    #[arg(long, value_name = "A,B", requires = "chart")]
    chart_hosts: Option<String>,

    /// Plot delivery latency (p50, p90, p99) and retransmissions per scenario and suite to
    /// FILE (SVG); with 100 seeds or more, also a latency histogram to FILE-latency.svg.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
}

/// Subcommands.
#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Draw the sequence chart of a trace file written by --trace.
    Chart(ChartCmd),
}

/// `pavillion-scenarios chart`.
#[derive(Debug, clap::Args)]
struct ChartCmd {
    /// The trace: JSON lines, format version 1 (docs/TRACE.md).
    trace: PathBuf,

    /// The chart to write: .svg, or .html with a filter and hover details.
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,

    /// Start at this simulated time, in milliseconds.
    #[arg(long, value_name = "MS", value_parser = millis)]
    from: Option<f64>,

    /// End at this simulated time, in milliseconds.
    #[arg(long, value_name = "MS", value_parser = millis)]
    to: Option<f64>,

    /// Draw only these hosts (comma-separated names) and the datagrams between them.
    #[arg(long, value_name = "A,B")]
    hosts: Option<String>,

    /// Draw at most N arrows; the chart stops at the first one left out.
    #[arg(long, value_name = "N", default_value_t = chart::MAX_ARROWS)]
    max_arrows: usize,
}

fn millis(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(ms) if ms.is_finite() && ms >= 0.0 => Ok(ms),
        _ => Err(format!(
            "`{s}` is not a time; expected milliseconds, 0 or more"
        )),
    }
}

impl Cli {
    /// The flags given that write a file of one run.
    fn one_run_flags(&self) -> Vec<&'static str> {
        [
            ("--trace", self.trace.is_some()),
            ("--pcap", self.pcap.is_some()),
            ("--keylog", self.keylog.is_some()),
            ("--chart", self.chart.is_some()),
        ]
        .into_iter()
        .filter_map(|(flag, on)| on.then_some(flag))
        .collect()
    }
}

fn probability(s: &str) -> Result<f64, String> {
    let p: f64 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a number; expected a probability in 0..=1"))?;
    if (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        Err(format!(
            "{p} is out of range; expected a probability in 0..=1"
        ))
    }
}

/// One run to make.
#[derive(Clone, Copy)]
struct Job {
    row: usize,
    scenario: &'static Scenario,
    suite: Suite,
    seed: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Chart(c)) = &cli.command {
        return chart_command(c);
    }
    if cli.list {
        list();
        return ExitCode::SUCCESS;
    }
    let scenarios: Vec<&'static Scenario> = if cli.only.is_empty() {
        SCENARIOS.iter().collect()
    } else {
        SCENARIOS
            .iter()
            .filter(|s| cli.only.iter().any(|n| selects(n, s)))
            .collect()
    };
    let seeds: Vec<u64> = match cli.seed {
        Some(s) => vec![s],
        None => (1..=cli.seeds).collect(),
    };
    let mut rows = Vec::new();
    let mut jobs = Vec::new();
    for s in &scenarios {
        for &suite in s.suites {
            if cli.suite.is_some_and(|only| only != suite) {
                continue;
            }
            let row = rows.len();
            rows.push(Row::new(s, suite));
            // A costly scenario runs its capped seeds unless it was asked for by name.
            let named = cli.only.iter().any(|n| n == s.name);
            let cap = pavillion_scenarios::seed_cap(s.name).filter(|_| !named);
            let capped = seeds.iter().filter(|&&seed| cap.is_none_or(|c| seed <= c));
            jobs.extend(capped.map(|&seed| Job {
                row,
                scenario: s,
                suite,
                seed,
            }));
        }
    }
    if jobs.is_empty() {
        Cli::command()
            .error(
                ErrorKind::InvalidValue,
                "no scenario selected runs over that suite",
            )
            .exit();
    }
    let one_run = cli.one_run_flags();
    if !one_run.is_empty() && jobs.len() != 1 {
        let msg = format!(
            "{} {} of exactly one run, but this selects {} runs; give one --only NAME, one \
             --seed S and, for a scenario with several suites, one --suite",
            one_run.join(", "),
            if one_run.len() == 1 {
                "writes the files"
            } else {
                "write the files"
            },
            jobs.len()
        );
        Cli::command()
            .error(ErrorKind::ArgumentConflict, msg)
            .exit();
    }

    let started = WallClock::now();
    let outcomes = run_all(&jobs, cli.loss, !one_run.is_empty());
    for (job, outcome) in jobs.iter().zip(&outcomes) {
        if let Some(row) = rows.get_mut(job.row) {
            row.add(job.seed, outcome);
        }
    }
    if let Some(outcome) = outcomes.first() {
        if let Err(code) = write_run_files(&cli, outcome) {
            return code;
        }
    }

    if let Some(path) = &cli.plot {
        match pavillion_scenarios::plot::write(&rows, seeds.len(), path) {
            Ok(files) => {
                for f in files {
                    eprintln!("plot written to {}", f.display());
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    }

    print!("{}", report::table(&rows));
    let oracle = pavillion_scenarios::oracle::lines(&rows, &seeds, cli.loss);
    if !oracle.is_empty() {
        print!("\noracle bound (resends every RTT, handshake included; same seeds and loss):\n{oracle}");
    }
    let notes = report::notes(&rows);
    if !notes.is_empty() {
        print!("\nnotes:\n{notes}");
    }
    let failures = report::failures(&rows);
    println!(
        "\n{} runs ({} scenario/suite pairs x {} seeds) in {:.1}s wall time",
        jobs.len(),
        rows.len(),
        seeds.len(),
        started.elapsed().as_secs_f64()
    );
    if failures.is_empty() {
        println!("all assertions held");
        ExitCode::SUCCESS
    } else {
        println!("\nfailures:\n{failures}");
        ExitCode::FAILURE
    }
}

/// Writes the files of `--trace`, `--pcap`, `--keylog` and `--chart` for the one run; exit status 2 if
/// one cannot be written.
fn write_run_files(cli: &Cli, outcome: &Outcome) -> Result<(), ExitCode> {
    let fail = |what: &str, path: &PathBuf, e: std::io::Error| {
        eprintln!("error: cannot write the {what} to {}: {e}", path.display());
        ExitCode::from(2)
    };
    if let Some(path) = &cli.trace {
        std::fs::write(path, outcome.trace.as_deref().unwrap_or_default())
            .map_err(|e| fail("trace", path, e))?;
        eprintln!("trace written to {}", path.display());
    }
    let capture = outcome.capture.clone().unwrap_or_default();
    if let Some(path) = &cli.pcap {
        pcap::write(path, &capture).map_err(|e| fail("capture", path, e))?;
        eprintln!("capture written to {}", path.display());
    }
    if let Some(path) = &cli.keylog {
        pcap::write_key_log(path, &capture).map_err(|e| fail("key log", path, e))?;
        eprintln!(
            "key log written to {} (it decrypts every session of this simulated run)",
            path.display()
        );
    }
    if let Some(path) = &cli.chart {
        let opts = ChartOptions::from_cli(cli.chart_from, cli.chart_to, cli.chart_hosts.as_deref());
        draw(outcome.trace.as_deref().unwrap_or_default(), path, &opts)?;
    }
    Ok(())
}

/// `pavillion-scenarios chart TRACE -o FILE`: 0 when drawn, 2 when the trace or the
/// arguments are bad.
fn chart_command(c: &ChartCmd) -> ExitCode {
    let trace = match std::fs::read_to_string(&c.trace) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", c.trace.display());
            return ExitCode::from(2);
        }
    };
    let mut opts = ChartOptions::from_cli(c.from, c.to, c.hosts.as_deref());
    opts.max_arrows = c.max_arrows;
    match draw(&trace, &c.output, &opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(code) => code,
    }
}

/// Draws a chart and says on stderr what it shows and what it left out.
fn draw(trace: &str, out: &std::path::Path, opts: &ChartOptions) -> Result<(), ExitCode> {
    match chart::write_file(trace, out, opts) {
        Ok(summary) => {
            eprintln!(
                "chart written to {}: {} arrows, {} marks",
                out.display(),
                summary.arrows,
                summary.marks
            );
            if summary.left_out_time + summary.left_out_hosts > 0 {
                eprintln!(
                    "left out: {} datagram copies outside the time window, {} of other hosts",
                    summary.left_out_time, summary.left_out_hosts
                );
            }
            if let Some(line) = summary.left_out_line() {
                eprintln!("{line}");
            }
            Ok(())
        }
        Err(e) => {
            eprintln!("error: {e}");
            Err(ExitCode::from(2))
        }
    }
}

fn list() {
    let width = names().map(str::len).max().unwrap_or(0);
    for s in SCENARIOS {
        let suites: Vec<&str> = s.suites.iter().map(|s| s.name()).collect();
        println!(
            "{:<width$}  [{}]  {}",
            s.name,
            suites.join(","),
            s.description
        );
    }
}

/// Runs every job on as many threads as there are cores, returning outcomes in job order.
fn run_all(jobs: &[Job], loss: Option<f64>, trace: bool) -> Vec<Outcome> {
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Outcome>>> = Mutex::new(vec![None; jobs.len()]);
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(jobs.len());
    let tty = std::io::stderr().is_terminal();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(job) = jobs.get(i) else { return };
                let params = Params {
                    seed: job.seed,
                    suite: job.suite,
                    loss,
                    trace,
                    scenario: job.scenario.name,
                };
                let outcome = (job.scenario.run)(&params);
                let verdict = if outcome.passed() { "ok" } else { "FAIL" };
                if let Ok(mut r) = results.lock() {
                    if let Some(slot) = r.get_mut(i) {
                        *slot = Some(outcome);
                    }
                }
                let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                progress(tty, n, jobs.len(), job, verdict);
            });
        }
    });
    if tty {
        eprint!("\r\x1b[K");
    }
    results
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .map(Option::unwrap_or_default)
        .collect()
}

/// One progress line on stderr: rewritten in place on a terminal; otherwise printed for
/// about every twentieth run, so that a log shows a long run moving without drowning in it.
fn progress(tty: bool, n: usize, total: usize, job: &Job, verdict: &str) {
    let line = format!(
        "[{n}/{total}] {} {} seed {} {verdict}",
        job.scenario.name, job.suite, job.seed
    );
    let mut err = std::io::stderr().lock();
    let _ = if tty {
        write!(err, "\r\x1b[K{line}")
    } else if n == total || n % total.div_ceil(20) == 0 || verdict != "ok" {
        writeln!(err, "{line}")
    } else {
        Ok(())
    };
    let _ = err.flush();
}
