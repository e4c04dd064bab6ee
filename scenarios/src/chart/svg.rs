//! Writing a scene as SVG: one self-contained element, styled by an inline stylesheet.
//!
//! Every element a reader (or a test) may look for has a class and `data-` attributes: a lane is
//! `g.lifeline[data-host]`, an arrow `g.arrow[data-label][data-fate][data-outcome]`, a drop
//! `g.drop[data-reason]` inside its arrow, a mark `g.mark[data-kind]`, a down time
//! `rect.band[data-host]`, a compressed stretch `g.gap`. Hover text is each element's `<title>`.

use core::fmt::Write as _;

use super::layout::{Arrow, End, Lane, MarkKind, Scene, Source, Target, LANE_STEP, LEFT};

const STYLE: &str = "\
.pav-chart{font-family:system-ui,sans-serif;font-size:11px}
.pav-chart .title{font-size:14px;font-weight:600}
.pav-chart .lifeline rect{fill:#eef3fb;stroke:#46a}
.pav-chart .lifeline .name{font-weight:600;text-anchor:middle}
.pav-chart .lifeline .role{fill:#567;text-anchor:middle;font-size:10px}
.pav-chart .lifeline line{stroke:#9ab;stroke-width:1.5}
.pav-chart .arrow line,.pav-chart .arrow path{stroke:#247;stroke-width:1.2;fill:none}
.pav-chart .arrow text{fill:#123;text-anchor:middle;paint-order:stroke;stroke:#fff;stroke-width:3px}
.pav-chart .fate-duplicate line{stroke:#c60;stroke-dasharray:6 3}
.pav-chart .fate-corrupted line{stroke:#83c;stroke-dasharray:2 2}
.pav-chart .outcome-lost line,.pav-chart .outcome-blocked line{stroke:#999}
.pav-chart .outcome-unreceived line{stroke:#999;stroke-dasharray:3 3}
.pav-chart .outcome-forwarded line{stroke:#6a8}
.pav-chart .cross{stroke:#d00;stroke-width:2}
.pav-chart .drop path{stroke:#d00;stroke-width:2}
.pav-chart .drop text{fill:#b00;font-weight:600}
.pav-chart .mark text{fill:#555;font-style:italic;font-size:10px}
.pav-chart .mark.event circle{fill:#2a2}
.pav-chart .mark.command rect{fill:#47c}
.pav-chart .mark.note path{fill:#e90}
.pav-chart .mark.note line{stroke:#e90;stroke-dasharray:4 4}
.pav-chart .band{fill:#fcc;fill-opacity:.8;stroke:#d66}
.pav-chart .gap rect{fill:#fff}
.pav-chart .gap path{stroke:#888;fill:none}
.pav-chart .gap text{fill:#666;font-size:10px}
.pav-chart .time{fill:#678;font-size:10px;text-anchor:end}
.pav-chart .summary{fill:#b00}
";

/// The scene as one `<svg>` element (no XML prolog, so that it can also be inlined in HTML).
pub(crate) fn write(scene: &Scene) -> String {
    let (w, h) = (scene.width(), scene.height());
    let mut s = String::with_capacity(4096 + scene.arrows.len() * 400);
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"pav-chart\" width=\"{w:.0}\" \
         height=\"{h:.0}\" viewBox=\"0 0 {w:.0} {h:.0}\">"
    );
    let _ = writeln!(s, "<style>{STYLE}</style>");
    s.push_str(
        "<defs><marker id=\"pav-head\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" \
         markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\">\
         <path d=\"M0,0L10,5L0,10z\" fill=\"#247\"/></marker></defs>\n",
    );
    let _ = writeln!(
        s,
        "<rect width=\"{w:.0}\" height=\"{h:.0}\" fill=\"#fff\"/>\
         <text class=\"title\" x=\"10\" y=\"20\">{}</text>",
        esc(&scene.title)
    );
    if let Some(line) = scene.summary.left_out_line() {
        let _ = writeln!(
            s,
            "<text class=\"summary\" x=\"10\" y=\"36\">{}</text>",
            esc(&line)
        );
    }
    bands(&mut s, scene);
    for lane in &scene.lanes {
        lifeline(&mut s, lane, scene.height() - 40.0);
    }
    gaps(&mut s, scene);
    times(&mut s, scene);
    let mut placer = Placer::default();
    marks(&mut s, scene, &mut placer);
    for a in &scene.arrows {
        arrow(&mut s, scene, a, &mut placer);
    }
    s.push_str("</svg>\n");
    s
}

fn lifeline(s: &mut String, lane: &Lane, bottom: f64) {
    let x = lane.x;
    let addr = lane.addrs.first().map(String::as_str).unwrap_or("");
    let more = if lane.addrs.len() > 1 {
        format!(" +{}", lane.addrs.len() - 1)
    } else {
        String::new()
    };
    let _ = writeln!(
        s,
        "<g class=\"lifeline\" data-host=\"{n}\" data-role=\"{r}\"><title>{n} ({r}) {a}</title>\
         <rect x=\"{rx:.1}\" y=\"44\" width=\"{rw:.0}\" height=\"38\" rx=\"4\"/>\
         <text class=\"name\" x=\"{x:.1}\" y=\"60\">{n}</text>\
         <text class=\"role\" x=\"{x:.1}\" y=\"75\">{r} {addr}{more}</text>\
         <line x1=\"{x:.1}\" y1=\"82\" x2=\"{x:.1}\" y2=\"{bottom:.1}\"/></g>",
        n = esc(&lane.name),
        r = esc(&lane.role),
        a = esc(&lane.addrs.join(" ")),
        addr = esc(addr),
        rx = x - (LANE_STEP - 20.0) / 2.0,
        rw = LANE_STEP - 20.0,
    );
}

fn bands(s: &mut String, scene: &Scene) {
    for b in &scene.bands {
        let Some(lane) = scene.lanes.get(b.lane) else {
            continue;
        };
        let y0 = scene.axis.y(b.t0);
        let y1 = b.t1.map_or(scene.axis.bottom() + 20.0, |t| scene.axis.y(t));
        let _ = writeln!(
            s,
            "<rect class=\"band\" data-host=\"{n}\" data-t=\"{t}\" x=\"{x:.1}\" y=\"{y0:.1}\" \
             width=\"16\" height=\"{h:.1}\"><title>{n} down from {from}{to}</title></rect>",
            n = esc(&lane.name),
            t = b.t0,
            x = lane.x - 8.0,
            h = (y1 - y0).max(2.0),
            from = time(b.t0),
            to = b.t1.map_or(String::new(), |t| format!(" to {}", time(t))),
        );
    }
}

fn gaps(s: &mut String, scene: &Scene) {
    let right = scene.width() - 20.0;
    for g in &scene.axis.gaps {
        let y = g.y;
        let mut zig = format!("M{:.1},{:.1}", LEFT - 60.0, y);
        let mut x = LEFT - 60.0;
        let mut up = true;
        while x < right {
            x += 8.0;
            let _ = write!(zig, "L{x:.1},{:.1}", if up { y - 4.0 } else { y + 4.0 });
            up = !up;
        }
        let _ = writeln!(
            s,
            "<g class=\"gap\" data-skipped-us=\"{us}\"><rect x=\"{x0:.1}\" y=\"{ry:.1}\" \
             width=\"{w:.1}\" height=\"12\"/><path d=\"{zig}\"/>\
             <text x=\"{tx:.1}\" y=\"{ty:.1}\">{len} later</text></g>",
            us = g.skipped_us,
            x0 = LEFT - 60.0,
            ry = y - 6.0,
            w = right - LEFT + 60.0,
            tx = LEFT - 60.0,
            ty = y - 8.0,
            len = crate::report::duration(core::time::Duration::from_micros(g.skipped_us)),
        );
    }
}

fn times(s: &mut String, scene: &Scene) {
    let mut last = f64::NEG_INFINITY;
    for (&t, &y) in scene.axis.times.iter().zip(&scene.axis.ys) {
        if y - last < 14.0 {
            continue;
        }
        last = y;
        let _ = writeln!(
            s,
            "<text class=\"time\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            LEFT - LANE_STEP / 2.0 + 20.0,
            y + 3.0,
            time(t)
        );
    }
}

fn marks(s: &mut String, scene: &Scene, placer: &mut Placer) {
    let right = scene.width() - 20.0;
    for m in &scene.marks {
        let y = scene.axis.y(m.t);
        let host = m
            .lane
            .and_then(|i| scene.lanes.get(i))
            .map_or("", |l| l.name.as_str());
        let _ = write!(
            s,
            "<g class=\"mark {k}\" data-kind=\"{k}\" data-sub=\"{sub}\" data-host=\"{h}\" \
             data-t=\"{t}\"><title>{time} {d}</title>",
            k = m.kind.name(),
            sub = esc(&m.sub),
            h = esc(host),
            t = m.t,
            time = time(m.t),
            d = esc(&m.details),
        );
        let Some(lane) = m.lane.and_then(|i| scene.lanes.get(i)) else {
            // A note of the whole simulation: a line across every lane.
            let _ = writeln!(
                s,
                "<line x1=\"{:.1}\" y1=\"{y:.1}\" x2=\"{right:.1}\" y2=\"{y:.1}\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\">{}</text></g>",
                LEFT - 60.0,
                LEFT - 60.0,
                y - 3.0,
                esc(&m.text)
            );
            continue;
        };
        let x = lane.x;
        let _ = match m.kind {
            MarkKind::Event => write!(s, "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"4\"/>"),
            MarkKind::Command => write!(
                s,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"7\" height=\"7\"/>",
                x - 3.5,
                y - 3.5
            ),
            MarkKind::Note => write!(s, "<path d=\"M{x:.1},{:.1}l5,5l-5,5l-5,-5z\"/>", y - 5.0),
        };
        // Mark text sits left of the lifeline, arrow labels above the arrows.
        let ty = placer.place(x - 8.0 - text_width(&m.text) / 2.0, y + 3.0, &m.text);
        let _ = writeln!(
            s,
            "<text text-anchor=\"end\" x=\"{:.1}\" y=\"{ty:.1}\">{}</text></g>",
            x - 8.0,
            esc(&m.text)
        );
    }
}

fn arrow(s: &mut String, scene: &Scene, a: &Arrow, placer: &mut Placer) {
    let lane_x = |i: usize| scene.lanes.get(i).map_or(LEFT, |l| l.x);
    let host = |i: usize| scene.lanes.get(i).map_or("", |l| l.name.as_str());
    let y0 = scene.axis.y(a.t0);
    let mut y1 = scene.axis.y(a.t1);
    let (x0, from) = match a.from {
        Source::Lane(i) => (lane_x(i), host(i)),
        Source::Unknown => (0.0, ""),
    };
    let (mut x1, to) = match a.to {
        Target::Lane(i) => (lane_x(i), host(i)),
        Target::Nowhere => (x0 + 70.0, ""),
    };
    // A forged copy comes in from the right: the time axis is on the left.
    let x0 = if a.from == Source::Unknown {
        x1 + 70.0
    } else {
        x0
    };
    let y0 = if a.from == Source::Unknown {
        y1 - 8.0
    } else {
        y0
    };
    let reason = match &a.end {
        End::Dropped(r) => r.as_str(),
        _ => "",
    };
    let _ = write!(
        s,
        "<g class=\"arrow fate-{f} outcome-{o}\" data-label=\"{l}\" data-fate=\"{f}\" \
         data-outcome=\"{o}\" data-reason=\"{r}\" data-from=\"{from}\" data-to=\"{to}\" \
         data-t=\"{t}\"{id}><title>{time} {d}</title>",
        f = a.fate.name(),
        o = a.end.name(),
        l = esc(&a.label),
        r = esc(reason),
        from = esc(from),
        to = esc(to),
        t = a.t0,
        id =
            a.id.map_or(String::new(), |id| format!(" data-id=\"{id}\"")),
        time = time(a.t0),
        d = esc(&a.details),
    );
    let self_loop = matches!((a.from, a.to), (Source::Lane(f), Target::Lane(t)) if f == t);
    if self_loop {
        // To itself (a host sending to its own address): a small loop on the right.
        let y1 = y1.max(y0 + 10.0);
        let _ = write!(
            s,
            "<path d=\"M{x0:.1},{y0:.1}h40V{y1:.1}h-40\" marker-end=\"url(#pav-head)\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            x0 + 44.0,
            (y0 + y1) / 2.0,
            esc(&a.label)
        );
        s.push_str("</g>\n");
        return;
    }
    let cut = matches!(a.end, End::Lost | End::Blocked | End::Unreceived);
    if cut {
        // Never arrived: the line stops half-way.
        if y1 < y0 + 8.0 {
            y1 = y0 + 8.0;
        }
        x1 = (x0 + x1) / 2.0;
        y1 = (y0 + y1) / 2.0;
    }
    let head = if cut {
        ""
    } else {
        " marker-end=\"url(#pav-head)\""
    };
    let _ = write!(
        s,
        "<line x1=\"{x0:.1}\" y1=\"{y0:.1}\" x2=\"{x1:.1}\" y2=\"{y1:.1}\"{head}/>"
    );
    let (lx, ly) = if cut {
        (x1 + (x0 - x1) / 2.0, (y0 + y1) / 2.0 - 3.0)
    } else {
        ((x0 + x1) / 2.0, (y0 + y1) / 2.0 - 3.0)
    };
    let ly = placer.place(lx, ly, &a.label);
    let _ = write!(
        s,
        "<text x=\"{lx:.1}\" y=\"{ly:.1}\">{}</text>",
        esc(&a.label)
    );
    match &a.end {
        End::Lost | End::Blocked => {
            let _ = write!(
                s,
                "<path class=\"cross\" d=\"M{:.1},{:.1}l10,10m0,-10l-10,10\"/>",
                x1 - 5.0,
                y1 - 5.0
            );
            if a.end == End::Blocked {
                let _ = write!(
                    s,
                    "<text x=\"{x1:.1}\" y=\"{:.1}\">blocked</text>",
                    y1 + 14.0
                );
            }
        }
        End::Unreceived => {
            let _ = write!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\">?</text>",
                x1 + 6.0,
                y1 + 4.0
            );
        }
        End::Dropped(reason) => {
            let dir = if x1 >= x0 { -1.0 } else { 1.0 };
            let cx = x1 + dir * 10.0;
            let _ = write!(
                s,
                "<g class=\"drop\" data-reason=\"{r}\"><path d=\"M{:.1},{:.1}l8,8m0,-8l-8,8\"/>\
                 <text x=\"{cx:.1}\" y=\"{:.1}\">{r}</text></g>",
                cx - 4.0,
                y1 - 4.0,
                y1 + 14.0,
                r = esc(reason)
            );
        }
        End::Accepted | End::Forwarded => {}
    }
    s.push_str("</g>\n");
}

/// Keeps texts from sitting on one another: each is moved up or down a line from where it
/// wants to be until it overlaps none of the recent ones.
#[derive(Default)]
struct Placer {
    /// Recent texts' boxes: x from, x to, baseline y.
    recent: alloc::collections::VecDeque<(f64, f64, f64)>,
}

impl Placer {
    /// How many recent texts a new one is checked against: texts are placed in time order,
    /// so older ones are far above.
    const RECENT: usize = 64;
    const LINE: f64 = 12.0;

    /// The baseline y for `text` centred at `x`, as near `y` as it fits.
    fn place(&mut self, x: f64, y: f64, text: &str) -> f64 {
        let half = text_width(text) / 2.0;
        let (x0, x1) = (x - half, x + half);
        let free = |y: f64, recent: &alloc::collections::VecDeque<(f64, f64, f64)>| {
            recent
                .iter()
                .all(|&(a, b, ty)| b <= x0 || a >= x1 || (ty - y).abs() >= Self::LINE)
        };
        let y = [0.0, -1.0, 1.0, -2.0, 2.0, 3.0]
            .iter()
            .map(|k| y + k * Self::LINE)
            .find(|&c| free(c, &self.recent))
            .unwrap_or(y);
        if self.recent.len() == Self::RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back((x0, x1, y));
        y
    }
}

/// About how wide `text` is at the chart's 11 px font.
fn text_width(text: &str) -> f64 {
    text.chars().count() as f64 * 6.2
}

/// Simulated time in seconds, to the microsecond.
pub(crate) fn time(us: u64) -> String {
    format!("{}.{:06}s", us / 1_000_000, us % 1_000_000)
}

/// Escapes text for XML content and attribute values.
pub(crate) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters are not allowed in XML 1.0.
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chart::trace::Fate;

    #[test]
    fn escapes_markup_and_control_characters() {
        assert_eq!(esc("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&#39;");
        assert_eq!(esc("x\u{1}y"), "x\u{fffd}y");
        assert_eq!(time(1_234_567), "1.234567s");
    }

    #[test]
    fn fate_classes_are_stable() {
        assert_eq!(Fate::Duplicate.name(), "duplicate");
        assert_eq!(End::Dropped("replay".into()).name(), "dropped");
    }
}
