//! From trace records to a scene: lanes, arrows, marks and bands placed on a time axis.
//!
//! Time flows down. Every distinct instant something happens at gets a row; consecutive rows
//! are at least [`MIN_STEP`] apart, so that labels of nearby arrows do not sit on one another,
//! plus a part proportional to the time between them up to [`MAX_SCALED`]. A longer quiet
//! stretch is compressed to that and marked as a gap, so a run with a 10 s partition is not
//! mostly empty paper.

use alloc::collections::BTreeMap;

use super::trace::{Fate, Outcome, Record, TextRec, TraceFile};
use super::{ChartError, ChartOptions, Summary};

/// Least vertical distance between two consecutive rows, in px.
pub(crate) const MIN_STEP: f64 = 18.0;
/// Most vertical distance time alone may add between two rows, in px; beyond, a gap marker.
pub(crate) const MAX_SCALED: f64 = 80.0;
/// Vertical px per millisecond of simulated time, below [`MAX_SCALED`].
pub(crate) const PX_PER_MS: f64 = 1.0;
/// Where the first row is, below the lane headers.
pub(crate) const TOP: f64 = 100.0;
/// The x of the first lane.
pub(crate) const LEFT: f64 = 150.0;
/// Horizontal distance between lanes.
pub(crate) const LANE_STEP: f64 = 230.0;
/// Characters of a command's or note's text beside its mark (all of it is in the hover text).
const MARK_TEXT: usize = 28;
/// How far a middlebox's forwarded copy may come after what it forwards, to be matched.
const FORWARD_WINDOW_US: u64 = 10_000_000;

/// A host's lifeline.
#[derive(Clone, Debug)]
pub(crate) struct Lane {
    pub(crate) name: String,
    pub(crate) role: String,
    pub(crate) addrs: Vec<String>,
    pub(crate) x: f64,
}

/// Where an arrow starts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Source {
    /// A lane.
    Lane(usize),
    /// Not a known host (a forged source the writer could not match): a stub from the left.
    Unknown,
}

/// Where an arrow goes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Target {
    /// A lane.
    Lane(usize),
    /// An address no host owns: a stub to the right.
    Nowhere,
}

/// How an arrow ends.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum End {
    /// The receiving endpoint accepted it.
    Accepted,
    /// The receiving endpoint dropped it, for this reason.
    Dropped(String),
    /// A middlebox passed it on (matched by its forwarded copy: no endpoint to receive it).
    Forwarded,
    /// Lost by the loss fault: a cross half-way.
    Lost,
    /// Blocked by a NAT or adversary: a cross half-way.
    Blocked,
    /// No receive record (a partition dropped it, or the run ended first).
    Unreceived,
}

impl End {
    /// A short stable name, the arrow's `data-outcome`.
    pub(crate) const fn name(&self) -> &'static str {
        match self {
            End::Accepted => "accepted",
            End::Dropped(_) => "dropped",
            End::Forwarded => "forwarded",
            End::Lost => "lost",
            End::Blocked => "blocked",
            End::Unreceived => "unreceived",
        }
    }
}

/// One datagram copy.
#[derive(Clone, Debug)]
pub(crate) struct Arrow {
    pub(crate) id: Option<u64>,
    pub(crate) from: Source,
    pub(crate) to: Target,
    pub(crate) t0: u64,
    pub(crate) t1: u64,
    pub(crate) label: String,
    pub(crate) fate: Fate,
    pub(crate) end: End,
    /// Hover text: addresses, length and the decoded packet.
    pub(crate) details: String,
}

/// What a mark on a lifeline is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MarkKind {
    Command,
    Event,
    Note,
}

impl MarkKind {
    pub(crate) const fn name(self) -> &'static str {
        match self {
            MarkKind::Command => "command",
            MarkKind::Event => "event",
            MarkKind::Note => "note",
        }
    }
}

/// A command, event or note at one instant; `lane: None` is a note of the whole simulation
/// (a partition), drawn across every lane.
#[derive(Clone, Debug)]
pub(crate) struct Mark {
    pub(crate) kind: MarkKind,
    pub(crate) lane: Option<usize>,
    pub(crate) t: u64,
    /// Short text beside the mark (an event's kind, a note's text).
    pub(crate) text: String,
    /// The note's kind, or the event's.
    pub(crate) sub: String,
    pub(crate) details: String,
}

/// A stretch during which a host was down (from a `crash` note to its `restart`).
#[derive(Clone, Debug)]
pub(crate) struct Band {
    pub(crate) lane: usize,
    pub(crate) t0: u64,
    /// `None`: still down at the end of the chart.
    pub(crate) t1: Option<u64>,
}

/// A compressed quiet stretch: drawn between two rows.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Gap {
    pub(crate) y: f64,
    pub(crate) skipped_us: u64,
}

/// Maps simulated time to y.
#[derive(Clone, Debug, Default)]
pub(crate) struct Axis {
    pub(crate) times: Vec<u64>,
    pub(crate) ys: Vec<f64>,
    pub(crate) gaps: Vec<Gap>,
}

impl Axis {
    fn new(mut times: Vec<u64>) -> Self {
        times.sort_unstable();
        times.dedup();
        let mut ys = Vec::with_capacity(times.len());
        let mut gaps = Vec::new();
        let mut y = TOP;
        let mut last: Option<u64> = None;
        for &t in &times {
            if let Some(prev) = last {
                let dt = t - prev;
                let scaled = dt as f64 / 1000.0 * PX_PER_MS;
                if scaled > MAX_SCALED {
                    gaps.push(Gap {
                        y: y + (MIN_STEP + MAX_SCALED) / 2.0,
                        skipped_us: dt,
                    });
                }
                y += MIN_STEP + scaled.min(MAX_SCALED);
            }
            ys.push(y);
            last = Some(t);
        }
        Axis { times, ys, gaps }
    }

    /// The y of `t`: a row's y, or between the two rows around it.
    pub(crate) fn y(&self, t: u64) -> f64 {
        match self.times.binary_search(&t) {
            Ok(i) => self.ys.get(i).copied().unwrap_or(TOP),
            Err(0) => TOP,
            Err(i) if i >= self.times.len() => self.ys.last().copied().unwrap_or(TOP),
            Err(i) => {
                let (t0, t1) = (self.times[i - 1], self.times[i]);
                let (y0, y1) = (self.ys[i - 1], self.ys[i]);
                y0 + (y1 - y0) * (t - t0) as f64 / (t1 - t0) as f64
            }
        }
    }

    /// The y of the last row.
    pub(crate) fn bottom(&self) -> f64 {
        self.ys.last().copied().unwrap_or(TOP)
    }
}

/// Everything a renderer draws.
#[derive(Clone, Debug, Default)]
pub(crate) struct Scene {
    pub(crate) title: String,
    pub(crate) lanes: Vec<Lane>,
    pub(crate) arrows: Vec<Arrow>,
    pub(crate) marks: Vec<Mark>,
    pub(crate) bands: Vec<Band>,
    pub(crate) axis: Axis,
    pub(crate) summary: Summary,
}

impl Scene {
    /// The x of the right edge of the drawing.
    pub(crate) fn width(&self) -> f64 {
        LEFT + LANE_STEP * self.lanes.len().max(1) as f64 + 60.0
    }

    /// The y of the bottom edge of the drawing.
    pub(crate) fn height(&self) -> f64 {
        self.axis.bottom() + 60.0
    }
}

/// Places a trace's records on a scene, applying the window, host set and arrow cap.
pub(crate) fn build(trace: &TraceFile, opts: &ChartOptions) -> Result<Scene, ChartError> {
    let h = &trace.header;
    let mut all: Vec<(String, String, Vec<String>)> = h
        .hosts
        .iter()
        .map(|x| (x.name.clone(), x.role.clone(), x.addrs.clone()))
        .collect();
    // Hosts the header forgot still get a lane, after the listed ones.
    for r in &trace.records {
        let host = match r {
            Record::Command(c) | Record::Note(c) => &c.host,
            Record::Datagram(d) => &d.host,
            Record::Receive(x) => &x.host,
            Record::Event(e) => &e.host,
            Record::Header(_) | Record::Unknown => continue,
        };
        if host != "sim" && !all.iter().any(|(n, _, _)| n == host) {
            all.push((host.clone(), String::new(), Vec::new()));
        }
    }
    if let Some(wanted) = &opts.hosts {
        if let Some(bad) = wanted.iter().find(|w| !all.iter().any(|(n, _, _)| n == *w)) {
            let known: Vec<&str> = all.iter().map(|(n, _, _)| n.as_str()).collect();
            return Err(ChartError::UnknownHost {
                host: bad.clone(),
                known: known.join(", "),
            });
        }
        all.retain(|(n, _, _)| wanted.contains(n));
    }
    let lanes: Vec<Lane> = all
        .into_iter()
        .enumerate()
        .map(|(i, (name, role, addrs))| Lane {
            name,
            role,
            addrs,
            x: LEFT + LANE_STEP * i as f64,
        })
        .collect();
    let lane_of = |host: &str| lanes.iter().position(|l| l.name == host);
    let in_window =
        |t: u64| opts.from_us.is_none_or(|f| t >= f) && opts.to_us.is_none_or(|to| t <= to);

    // Receives by datagram id: the first one is the copy's arrival.
    let mut received: BTreeMap<u64, (u64, Outcome, Option<String>)> = BTreeMap::new();
    // Middleboxes' datagrams, to end arrows at a middlebox that has no receive records.
    let middleboxes: Vec<&str> = trace
        .header
        .hosts
        .iter()
        .filter(|x| x.role == "middlebox")
        .map(|x| x.name.as_str())
        .collect();
    let mut forwarded: BTreeMap<&str, Vec<(u64, u64, bool)>> = BTreeMap::new();
    for r in &trace.records {
        match r {
            Record::Receive(x) => {
                if let Some(id) = x.id {
                    received
                        .entry(id)
                        .or_insert((x.t, x.outcome, x.reason.clone()));
                }
            }
            Record::Datagram(d) if middleboxes.contains(&d.host.as_str()) => {
                forwarded
                    .entry(d.host.as_str())
                    .or_default()
                    .push((d.t, d.len, false));
            }
            _ => {}
        }
    }

    let mut summary = Summary::default();
    let mut arrows = Vec::new();
    let mut marks = Vec::new();
    let mut bands: Vec<Band> = Vec::new();
    for r in &trace.records {
        match r {
            Record::Datagram(d) => {
                let (Some(from), to) = (lane_of(&d.host), d.to_host.as_deref()) else {
                    summary.left_out_hosts += 1;
                    continue;
                };
                let target = match to {
                    Some(name) => match lane_of(name) {
                        Some(i) => Target::Lane(i),
                        None if opts.hosts.is_some() => {
                            summary.left_out_hosts += 1;
                            continue;
                        }
                        None => Target::Nowhere,
                    },
                    None => Target::Nowhere,
                };
                if !in_window(d.t) {
                    summary.left_out_time += 1;
                    continue;
                }
                let (end, t1) = match (d.fate, received.get(&d.id)) {
                    (Fate::Lost, _) => (End::Lost, d.t + d.delay_us),
                    (Fate::Blocked, _) => (End::Blocked, d.t + d.delay_us),
                    (_, Some((t, Outcome::Dropped, reason))) => (
                        End::Dropped(reason.clone().unwrap_or_else(|| "dropped".into())),
                        *t,
                    ),
                    (_, Some((t, _, _))) => (End::Accepted, *t),
                    (_, None) => {
                        let via = to
                            .filter(|n| middleboxes.contains(n))
                            .and_then(|n| forwarded.get_mut(n))
                            .and_then(|list| forward_of(list, d.t, d.len));
                        match via {
                            Some(t) => (End::Forwarded, t),
                            None => (End::Unreceived, d.t + d.delay_us),
                        }
                    }
                };
                let packet = d
                    .packet
                    .as_ref()
                    .map(|p| format!("\n{p}"))
                    .unwrap_or_default();
                arrows.push(Arrow {
                    id: Some(d.id),
                    from: Source::Lane(from),
                    to: target,
                    t0: d.t,
                    t1: t1.max(d.t),
                    label: d.label(),
                    fate: d.fate,
                    details: format!(
                        "#{} {} -> {} ({}) {} bytes, {}{}{packet}",
                        d.id,
                        d.from,
                        d.to,
                        to.unwrap_or("no host"),
                        d.len,
                        d.fate.name(),
                        match &end {
                            End::Dropped(r) => format!(", dropped: {r}"),
                            e => format!(", {}", e.name()),
                        }
                    ),
                    end,
                });
            }
            Record::Receive(x) if x.id.is_none() => {
                // A copy nobody is known to have sent (forged): a stub from the left.
                let Some(lane) = lane_of(&x.host) else {
                    summary.left_out_hosts += 1;
                    continue;
                };
                if !in_window(x.t) {
                    summary.left_out_time += 1;
                    continue;
                }
                let end = match x.outcome {
                    Outcome::Dropped => {
                        End::Dropped(x.reason.clone().unwrap_or_else(|| "dropped".into()))
                    }
                    _ => End::Accepted,
                };
                arrows.push(Arrow {
                    id: None,
                    from: Source::Unknown,
                    to: Target::Lane(lane),
                    t0: x.t,
                    t1: x.t,
                    label: format!("from {}", x.from),
                    fate: Fate::Sent,
                    details: format!(
                        "unmatched copy from {} to {}, {} bytes, {}",
                        x.from,
                        x.host,
                        x.len,
                        end.name()
                    ),
                    end,
                });
            }
            Record::Event(e) => {
                if let (Some(lane), true) = (lane_of(&e.host), in_window(e.t)) {
                    marks.push(Mark {
                        kind: MarkKind::Event,
                        lane: Some(lane),
                        t: e.t,
                        text: e.kind().to_string(),
                        sub: e.kind().to_string(),
                        details: format!("{}: {}", e.host, e.event),
                    });
                }
            }
            Record::Command(c) => {
                if let (Some(lane), true) = (lane_of(&c.host), in_window(c.t)) {
                    marks.push(text_mark(MarkKind::Command, Some(lane), c));
                }
            }
            Record::Note(n) => {
                let kind = n.kind.as_deref().unwrap_or("other");
                // The simulation's notes about one host (`crash server`, `bounce server`) go
                // on that host's lifeline; its others (`partition a b`) across every lane.
                let subject = match subject_of(n) {
                    Some(host) => match lane_of(host) {
                        Some(lane) => Some(lane),
                        None => continue,
                    },
                    None if n.host == "sim" => None,
                    None => match lane_of(&n.host) {
                        Some(lane) => Some(lane),
                        // A note of a host the host set leaves out.
                        None => continue,
                    },
                };
                if let Some(lane) = subject {
                    let open = bands
                        .iter_mut()
                        .rev()
                        .find(|b| b.lane == lane && b.t1.is_none());
                    match (kind, open) {
                        ("crash", None) if !n.text.starts_with("crash-in-commit") => {
                            bands.push(Band {
                                lane,
                                t0: n.t,
                                t1: None,
                            });
                        }
                        ("restart", Some(b)) => b.t1 = Some(n.t),
                        _ => {}
                    }
                }
                if in_window(n.t) {
                    marks.push(text_mark(MarkKind::Note, subject, n));
                }
            }
            Record::Receive(_) | Record::Header(_) | Record::Unknown => {}
        }
    }

    // The cap: keep the first `max_arrows` (in send order) and cut everything at the first
    // one left out, so that what is drawn is the whole story up to that instant.
    arrows.sort_by_key(|a| a.t0);
    if arrows.len() > opts.max_arrows {
        let cut = arrows[opts.max_arrows].t0;
        let kept = arrows.iter().take_while(|a| a.t0 < cut).count();
        summary.capped = arrows.len() - kept;
        summary.cut_at_us = Some(cut);
        arrows.truncate(kept);
        marks.retain(|m| m.t < cut);
    }
    let last_arrow = arrows.iter().map(|a| a.t1).max();
    let last_mark = marks.iter().map(|m| m.t).max();
    let end = last_arrow.max(last_mark);
    // Bands start and end inside what is drawn.
    let start = opts.from_us.unwrap_or(0);
    bands.retain(|b| end.is_some_and(|e| b.t0 <= e) && b.t1.is_none_or(|t| t >= start));
    for b in &mut bands {
        b.t0 = b.t0.max(start);
        b.t1 = b.t1.map(|t| t.min(end.unwrap_or(t)));
    }

    let mut times: Vec<u64> = Vec::with_capacity(arrows.len() * 2 + marks.len());
    for a in &arrows {
        times.push(a.t0);
        times.push(a.t1);
    }
    times.extend(marks.iter().map(|m| m.t));
    times.extend(bands.iter().flat_map(|b| [Some(b.t0), b.t1]).flatten());
    summary.arrows = arrows.len();
    summary.marks = marks.len();
    let title = format!(
        "{} {} seed {}",
        h.scenario.as_deref().unwrap_or("trace"),
        h.suite.as_deref().unwrap_or("-"),
        h.seed.map_or("-".to_string(), |s| s.to_string()),
    );
    Ok(Scene {
        title,
        lanes,
        arrows,
        marks,
        bands,
        axis: Axis::new(times),
        summary,
    })
}

fn text_mark(kind: MarkKind, lane: Option<usize>, r: &TextRec) -> Mark {
    let mut text: String = r.text.chars().take(MARK_TEXT).collect();
    if text.len() < r.text.len() {
        text.push('…');
    }
    Mark {
        kind,
        lane,
        t: r.t,
        text,
        sub: r.kind.clone().unwrap_or_else(|| kind.name().into()),
        details: format!("{}: {}", r.host, r.text),
    }
}

/// The host a note of the simulation (host `sim`) is about: the second word of a crash or a
/// restart (`crash server`, `crash server in commit`, `bounce server`).
fn subject_of(n: &TextRec) -> Option<&str> {
    if n.host != "sim" || !matches!(n.kind.as_deref(), Some("crash" | "restart")) {
        return None;
    }
    let mut words = n.text.split_whitespace();
    words.next()?;
    words.next()
}

/// The first unused copy of `len` bytes a middlebox sent at or after `t` (what it made of the
/// datagram that reached it then), marked used.
fn forward_of(list: &mut [(u64, u64, bool)], t: u64, len: u64) -> Option<u64> {
    let start = list.partition_point(|(at, _, _)| *at < t);
    let slot = list
        .iter_mut()
        .skip(start)
        .take(256)
        .take_while(|(at, _, _)| *at <= t + FORWARD_WINDOW_US)
        .find(|(_, l, used)| *l == len && !*used)?;
    slot.2 = true;
    Some(slot.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_gaps_are_compressed_and_marked() {
        let a = Axis::new(vec![0, 1_000, 1_000, 10_000_000]);
        assert_eq!(a.times, [0, 1_000, 10_000_000]);
        assert_eq!(a.ys[0], TOP);
        assert_eq!(a.ys[1], TOP + MIN_STEP + 1.0);
        assert_eq!(a.ys[2], a.ys[1] + MIN_STEP + MAX_SCALED);
        assert_eq!(a.gaps.len(), 1);
        assert_eq!(a.gaps[0].skipped_us, 9_999_000);
        // Between rows, y is interpolated; beyond them, clamped.
        assert_eq!(a.y(500), TOP + (MIN_STEP + 1.0) / 2.0);
        assert_eq!(a.y(20_000_000), a.bottom());
    }

    #[test]
    fn a_forwarded_copy_is_used_once() {
        let mut list = vec![(10, 5, false), (12, 7, false), (15, 7, false)];
        assert_eq!(forward_of(&mut list, 11, 7), Some(12));
        assert_eq!(forward_of(&mut list, 11, 7), Some(15));
        assert_eq!(forward_of(&mut list, 11, 7), None);
        assert_eq!(forward_of(&mut list, 0, 5), Some(10));
    }
}
