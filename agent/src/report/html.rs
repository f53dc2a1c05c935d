//! `report.html`: one self-contained page (inline CSS and SVG, no scripts, nothing fetched) with the
//! verdict, checks and safety counters on top, then per op a latency chart (p50, p99, max per
//! interval) and a throughput chart, fault windows shaded on every chart, the fault table and the
//! events.

use std::fmt::Write;

use crate::plan::counter::CounterKind;
use crate::summary::{FaultRecord, OpSummary, RunSummary, SeriesPoint};
use crate::units::{fmt_count, fmt_us};

/// Render the whole page.
pub fn render(s: &RunSummary) -> String {
    let mut o = String::with_capacity(64 * 1024);
    let verdict = s.verdict.name().to_uppercase();
    let verdict = verdict.as_str();
    let _ = write!(
        o,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{verdict} · {} · valkey-chaos</title>\n<style>{CSS}</style></head><body>\n",
        esc(&s.scenario)
    );
    header(&mut o, s, verdict);
    checks(&mut o, s);
    counters(&mut o, s);
    let span = time_span(s);
    for w in &s.workloads {
        let _ = writeln!(
            o,
            "<section class=\"workload\"><h2>workload {} <small>{}, {} clients, {}</small></h2>",
            esc(&w.id),
            esc(w.kind.name()),
            w.clients,
            esc(&w.model)
        );
        if w.late_starts > 0 || w.dropped_starts > 0 {
            let _ = writeln!(
                o,
                "<p class=\"warn\">pacing: {} late starts, {} dropped starts \
                 (the agent could not keep the rate)</p>",
                fmt_count(w.late_starts),
                fmt_count(w.dropped_starts)
            );
        }
        let ops: Vec<&OpSummary> = s.ops.iter().filter(|x| x.workload == w.id).collect();
        op_table(&mut o, &ops);
        for op in ops {
            let pts: Vec<&SeriesPoint> = s
                .series
                .iter()
                .filter(|p| p.workload == op.workload && p.op == op.op)
                .collect();
            let _ = write!(
                o,
                "<h3>{}.{}</h3>\n<div class=\"charts\">",
                esc(&w.id),
                esc(&op.op)
            );
            if pts.is_empty() {
                o.push_str("<p class=\"muted\">no intervals recorded</p>");
            } else {
                latency_chart(&mut o, &pts, &s.faults, span);
                throughput_chart(&mut o, &pts, &s.faults, span);
            }
            o.push_str("</div>\n");
        }
        o.push_str("</section>\n");
    }
    faults(&mut o, s);
    events(&mut o, s);
    let _ = write!(
        o,
        "<footer>valkey-chaos · run {} · started {} · intervals of {}s</footer>\n</body></html>\n",
        esc(&s.run_id),
        esc(&s.started_at),
        s.interval_secs
    );
    o
}

/// Text escaped for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const CSS: &str = "\
:root{--ok:#1a7f37;--bad:#cf222e;--mut:#57606a;--line:#d0d7de;--bg2:#f6f8fa}\
*{box-sizing:border-box}\
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1f2328;\
background:#fff;max-width:1160px;margin:0 auto;padding:18px 22px}\
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:26px 0 8px;padding-bottom:4px;\
border-bottom:1px solid var(--line)}h2 small{font-weight:400;color:var(--mut);font-size:13px}\
h3{font-size:14px;margin:14px 0 6px;font-family:ui-monospace,monospace}\
header{display:flex;gap:22px;align-items:center}\
.verdict{font-size:42px;font-weight:800;letter-spacing:1px;padding:4px 24px;border-radius:8px;color:#fff}\
.verdict.pass{background:var(--ok)}.verdict.fail{background:var(--bad)}.verdict.incomplete{background:#9a6700}\
dl{display:grid;grid-template-columns:max-content 1fr;gap:1px 12px;margin:0}\
dt{color:var(--mut)}dd{margin:0;font-family:ui-monospace,monospace;font-size:13px}\
table{border-collapse:collapse;font-variant-numeric:tabular-nums;margin:4px 0}\
th,td{padding:3px 10px;border-bottom:1px solid var(--line);text-align:right;vertical-align:top}\
th{background:var(--bg2);font-weight:600}th.l,td.l{text-align:left}\
td.m{font-family:ui-monospace,monospace;font-size:13px}\
.pass-t{color:var(--ok);font-weight:700}.fail-t{color:var(--bad);font-weight:700}\
.chip{display:inline-block;padding:0 7px;margin:1px 3px 1px 0;border-radius:10px;\
background:var(--bg2);border:1px solid var(--line);font-size:13px}\
.chip.safe{border-color:var(--ok);color:var(--ok)}.chip.unsafe{background:var(--bad);\
border-color:var(--bad);color:#fff;font-weight:700}\
.alert{border:2px solid var(--bad);border-radius:6px;padding:6px 12px;color:var(--bad)}\
.warn{color:#9a6700}.muted{color:var(--mut)}\
.charts{display:flex;flex-wrap:wrap;gap:10px}\
svg.chart{border:1px solid var(--line);border-radius:4px;background:#fff}\
svg text{font:11px system-ui,sans-serif;fill:#57606a}svg text.t{fill:#1f2328;font-weight:600}\
.grid{stroke:#eaeef2;stroke-width:1}.axis{stroke:#8c959f;stroke-width:1}\
.fault-window{fill:#f2cc60;fill-opacity:.28;stroke:#d4a72c;stroke-opacity:.7}\
.impact-window{fill:#cf222e;fill-opacity:.55}\
svg text.fault-label{fill:#7d4e00}\
.s{fill:none;stroke-width:1.6;stroke-linejoin:round}\
.p50{stroke:#0969da}.p99{stroke:#bf3989}.max{stroke:#8c959f;stroke-dasharray:3 2;stroke-width:1.2}\
.okr{stroke:#1a7f37}.errr{stroke:#cf222e}\
footer{margin-top:28px;color:var(--mut);font-size:12px}";

fn header(o: &mut String, s: &RunSummary, verdict: &str) {
    let _ = write!(
        o,
        "<header><div class=\"verdict {}\">{verdict}</div><div><h1>{}</h1><dl>",
        verdict.to_lowercase(),
        esc(&s.scenario)
    );
    let server = if s.server.version.is_empty() {
        "unknown".to_string()
    } else {
        format!(
            "{} {} (redis_version {})",
            s.server.server_name, s.server.version, s.server.redis_version
        )
    };
    let ran = format!(
        "{:.1}s of {:.1}s{}",
        s.duration_secs,
        s.planned_duration_secs,
        if s.interrupted { " (interrupted)" } else { "" }
    );
    let failed = s.checks.iter().filter(|c| !c.passed).count();
    let checks = if s.checks.is_empty() {
        "nothing was checked (no threshold, oracle or fault applies)".to_string()
    } else {
        format!(
            "{} of {} passed{}",
            s.checks.len() - failed,
            s.checks.len(),
            if s.heal_failures.is_empty() {
                ""
            } else {
                "; heal failures"
            }
        )
    };
    for (k, v) in [
        ("seed", s.seed.to_string()),
        ("target", s.target.clone()),
        ("server", server),
        ("ran", ran),
        ("checks", checks),
    ] {
        let _ = write!(o, "<dt>{k}</dt><dd>{}</dd>", esc(&v));
    }
    for why in &s.incomplete {
        let _ = write!(o, "<dt>incomplete</dt><dd>{}</dd>", esc(why));
    }
    o.push_str("</dl></div></header>\n");
}

fn checks(o: &mut String, s: &RunSummary) {
    o.push_str("<section id=\"checks\"><h2>checks</h2>\n");
    if !s.heal_failures.is_empty() {
        o.push_str(
            "<div class=\"alert\"><b>heal failures: the target may still be degraded</b><ul>",
        );
        for h in &s.heal_failures {
            let _ = write!(o, "<li>{}</li>", esc(h));
        }
        o.push_str("</ul></div>\n");
    }
    if s.checks.is_empty() {
        o.push_str("<p class=\"muted\">no thresholds</p>");
    } else {
        o.push_str(
            "<table><tr><th class=\"l\"></th><th class=\"l\">metric</th>\
             <th class=\"l\">condition</th><th>got</th></tr>\n",
        );
        for c in &s.checks {
            let (cls, word) = if c.passed {
                ("pass-t", "PASS")
            } else {
                ("fail-t", "FAIL")
            };
            let _ = writeln!(
                o,
                "<tr><td class=\"l {cls}\">{word}</td><td class=\"l m\">{}</td>\
                 <td class=\"l m\">{}</td><td class=\"m\">{}</td></tr>",
                esc(&c.metric),
                esc(&c.condition),
                esc(&c.shown)
            );
        }
        o.push_str("</table>");
    }
    o.push_str("</section>\n");
}

fn fmt_value(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v}")
    } else {
        format!("{v:.3}")
    }
}

fn counters(o: &mut String, s: &RunSummary) {
    if s.counters.is_empty() {
        return;
    }
    o.push_str(
        "<section id=\"counters\"><h2>safety counters</h2>\n<table>\
         <tr><th class=\"l\">workload</th><th class=\"l\">counters</th></tr>\n",
    );
    for w in &s.workloads {
        let cs: Vec<_> = s.counters.iter().filter(|c| c.workload == w.id).collect();
        if cs.is_empty() {
            continue;
        }
        let _ = write!(
            o,
            "<tr><td class=\"l m\">{}</td><td class=\"l\">",
            esc(&w.id)
        );
        for c in cs {
            let cls = match (c.kind == CounterKind::Safety, c.value == 0.0) {
                (true, true) => "chip safe",
                (true, false) => "chip unsafe",
                (false, _) => "chip",
            };
            let _ = write!(
                o,
                "<span class=\"{cls}\">{} {}</span>",
                esc(&c.name),
                fmt_value(c.value)
            );
        }
        o.push_str("</td></tr>\n");
    }
    o.push_str("</table></section>\n");
}

fn op_table(o: &mut String, ops: &[&OpSummary]) {
    o.push_str(
        "<table><tr><th class=\"l\">op</th><th>count</th><th>rate/s</th><th>p50</th><th>p90</th>\
         <th>p99</th><th>p99.9</th><th>max</th><th>service p99</th><th>errors</th>\
         <th class=\"l\">errors by kind</th></tr>\n",
    );
    for op in ops {
        let l = &op.latency_us;
        let f = |v: u64| {
            if op.ok > 0 {
                fmt_us(v as f64)
            } else {
                "-".into()
            }
        };
        let kinds: Vec<String> = op
            .errors_by_kind
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(
            o,
            "<tr><td class=\"l m\">{}</td><td>{}</td><td>{:.1}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td{}>{}</td><td class=\"l\">{}</td></tr>",
            esc(&op.op),
            fmt_count(op.count),
            op.rate_per_sec,
            f(l.p50),
            f(l.p90),
            f(l.p99),
            f(l.p999),
            f(l.max),
            f(op.service_us.p99),
            if op.errors > 0 {
                " class=\"fail-t\""
            } else {
                ""
            },
            fmt_count(op.errors),
            esc(&kinds.join(", "))
        );
    }
    o.push_str("</table>\n");
}

// ---- charts ----

const W: f64 = 548.0;
const H: f64 = 190.0;
const LEFT: f64 = 58.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 24.0;
const BOTTOM: f64 = 22.0;

/// The time axis: from 0 to the end of the run (or of the last interval).
fn time_span(s: &RunSummary) -> f64 {
    s.series
        .iter()
        .map(|p| p.end_secs)
        .chain(s.faults.iter().filter_map(|f| f.healed_at_secs))
        .fold(s.duration_secs, f64::max)
        .max(1e-3)
}

struct Frame {
    span: f64,
    lo: f64,
    hi: f64,
    log: bool,
}

impl Frame {
    fn x(&self, t: f64) -> f64 {
        LEFT + (t / self.span).clamp(0.0, 1.0) * (W - LEFT - RIGHT)
    }
    fn y(&self, v: f64) -> f64 {
        let f = if self.log {
            (v.max(self.lo).log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10())
        } else {
            (v - self.lo) / (self.hi - self.lo)
        };
        H - BOTTOM - f.clamp(0.0, 1.0) * (H - TOP - BOTTOM)
    }
}

fn chart_open(o: &mut String, title: &str, legend: &[(&str, &str)]) {
    let _ = write!(
        o,
        "<svg class=\"chart\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" role=\"img\">\
         <title>{}</title><text class=\"t\" x=\"{LEFT}\" y=\"14\">{}</text>",
        esc(title),
        esc(title)
    );
    let mut x = W - RIGHT;
    for (cls, name) in legend.iter().rev() {
        x -= 6.0 * name.len() as f64 + 8.0;
        let _ = write!(o, "<text x=\"{x:.1}\" y=\"14\">{}</text>", esc(name));
        x -= 22.0;
        let _ = write!(
            o,
            "<line class=\"s {cls}\" x1=\"{x:.1}\" y1=\"10\" x2=\"{:.1}\" y2=\"10\"/>",
            x + 16.0
        );
        x -= 8.0;
    }
}

/// The frame: grid lines with labels on the value axis, the time axis, shaded fault windows.
fn chart_frame(o: &mut String, f: &Frame, yticks: &[(f64, String)], faults: &[FaultRecord]) {
    for (v, label) in yticks {
        let y = f.y(*v);
        let _ = write!(
            o,
            "<line class=\"grid\" x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            W - RIGHT,
            LEFT - 5.0,
            y + 4.0,
            esc(label)
        );
    }
    let step = time_step(f.span);
    let mut t = 0.0;
    while t <= f.span + 1e-9 {
        let x = f.x(t);
        let _ = write!(
            o,
            "<line class=\"axis\" x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\"/>\
             <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            H - BOTTOM,
            H - BOTTOM + 4.0,
            H - 6.0,
            fmt_secs(t)
        );
        t += step;
    }
    let _ = write!(
        o,
        "<line class=\"axis\" x1=\"{LEFT}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\"/>",
        H - BOTTOM,
        W - RIGHT,
        H - BOTTOM
    );
    for (k, fr) in faults.iter().enumerate() {
        let Some(from) = fr.injected_at_secs else {
            continue;
        };
        let to = fr.healed_at_secs.unwrap_or(f.span);
        let (x0, x1) = (f.x(from), f.x(to));
        // The impact window: from the injection until every workload was back to normal.
        if let Some(imp) = &fr.impact {
            let xi = f.x(imp.until_secs.min(f.span));
            let _ = write!(
                o,
                "<rect class=\"impact-window\" x=\"{x0:.1}\" y=\"{:.1}\" width=\"{:.1}\" \
                 height=\"{:.1}\"><title>impact of #{} {}: {:.0} ms{}</title></rect>",
                H - BOTTOM - 6.0,
                (xi - x0).max(2.0),
                6.0,
                fr.index,
                esc(&fr.name),
                imp.window_ms,
                if imp.recovered {
                    ""
                } else {
                    ", not back to normal before the load ended"
                }
            );
        }
        let label = format!("#{} {}", fr.index, fr.name);
        let tip = format!(
            "fault #{} {} ({}) on {}: {from:.1}s → {}",
            fr.index,
            fr.name,
            fr.kind,
            fr.target,
            match fr.healed_at_secs {
                Some(h) => format!("{h:.1}s"),
                None => "not healed".into(),
            }
        );
        let _ = write!(
            o,
            "<g class=\"fault\"><title>{}</title><rect class=\"fault-window\" x=\"{x0:.1}\" \
             y=\"{TOP}\" width=\"{:.1}\" height=\"{:.1}\"/><text class=\"fault-label\" \
             x=\"{:.1}\" y=\"{:.1}\">{}</text></g>",
            esc(&tip),
            (x1 - x0).max(2.0),
            H - TOP - BOTTOM,
            x0 + 3.0,
            TOP + 11.0 + 12.0 * (k % 4) as f64,
            esc(&label)
        );
    }
}

/// A line through the points that have a value; gaps where they do not.
fn path(o: &mut String, cls: &str, f: &Frame, pts: &[(f64, Option<f64>)]) {
    let mut d = String::new();
    let mut pen_down = false;
    for (t, v) in pts {
        match v {
            Some(v) => {
                let _ = write!(
                    d,
                    "{}{:.1},{:.1}",
                    if pen_down { " L" } else { " M" },
                    f.x(*t),
                    f.y(*v)
                );
                pen_down = true;
            }
            None => pen_down = false,
        }
    }
    if !d.is_empty() {
        let _ = write!(o, "<path class=\"s {cls}\" d=\"{}\"/>", d.trim_start());
    }
}

fn mid(p: &SeriesPoint) -> f64 {
    (p.start_secs + p.end_secs) / 2.0
}

fn latency_chart(o: &mut String, pts: &[&SeriesPoint], faults: &[FaultRecord], span: f64) {
    let with_data: Vec<&&SeriesPoint> = pts.iter().filter(|p| p.ok > 0).collect();
    let lo_v = with_data
        .iter()
        .map(|p| p.p50_us.max(1) as f64)
        .fold(f64::INFINITY, f64::min);
    let hi_v = with_data
        .iter()
        .map(|p| p.max_us.max(1) as f64)
        .fold(1.0, f64::max);
    let lo = if lo_v.is_finite() {
        10f64.powf(lo_v.log10().floor())
    } else {
        100.0
    };
    let hi = 10f64.powf(hi_v.log10().ceil()).max(lo * 10.0);
    let f = Frame {
        span,
        lo,
        hi,
        log: true,
    };
    chart_open(
        o,
        "latency (log scale)",
        &[("p50", "p50"), ("p99", "p99"), ("max", "max")],
    );
    let mut ticks = vec![];
    let mut v = lo;
    while v <= hi * 1.0001 {
        ticks.push((v, fmt_us(v)));
        v *= 10.0;
    }
    chart_frame(o, &f, &ticks, faults);
    let val = |p: &SeriesPoint, v: u64| (p.ok > 0).then_some(v.max(1) as f64);
    for (cls, get) in [
        (
            "max",
            (|p: &SeriesPoint| p.max_us) as fn(&SeriesPoint) -> u64,
        ),
        ("p99", |p| p.p99_us),
        ("p50", |p| p.p50_us),
    ] {
        let line: Vec<(f64, Option<f64>)> = pts.iter().map(|p| (mid(p), val(p, get(p)))).collect();
        path(o, cls, &f, &line);
    }
    o.push_str("</svg>");
}

fn throughput_chart(o: &mut String, pts: &[&SeriesPoint], faults: &[FaultRecord], span: f64) {
    let rate = |n: u64, p: &SeriesPoint| n as f64 / (p.end_secs - p.start_secs).max(1e-3);
    let top = pts
        .iter()
        .map(|p| rate(p.ok, p).max(rate(p.errors, p)))
        .fold(0.0, f64::max);
    let step = nice_ceil(top.max(4.0) / 4.0);
    let hi = (top / step).ceil().max(1.0) * step;
    let f = Frame {
        span,
        lo: 0.0,
        hi,
        log: false,
    };
    chart_open(
        o,
        "throughput (ops/s)",
        &[("okr", "ok"), ("errr", "errors")],
    );
    let ticks: Vec<(f64, String)> = (0..=(hi / step).round() as u32)
        .map(|k| (k as f64 * step, fmt_short(k as f64 * step)))
        .collect();
    chart_frame(o, &f, &ticks, faults);
    let ok: Vec<(f64, Option<f64>)> = pts.iter().map(|p| (mid(p), Some(rate(p.ok, p)))).collect();
    path(o, "okr", &f, &ok);
    let err: Vec<(f64, Option<f64>)> = pts
        .iter()
        .map(|p| (mid(p), Some(rate(p.errors, p))))
        .collect();
    path(o, "errr", &f, &err);
    o.push_str("</svg>");
}

/// A round number at or above `v`: 1, 2, 2.5 or 5 times a power of ten.
fn nice_ceil(v: f64) -> f64 {
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|x| *x >= v)
        .unwrap_or(10.0 * p)
}

/// Seconds between time-axis ticks: at most about eight ticks.
fn time_step(span: f64) -> f64 {
    [
        0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0,
    ]
    .into_iter()
    .find(|s| span / s <= 8.0)
    .unwrap_or(7200.0)
}

/// 950, 1.2k, 35k, 1.5M.
fn fmt_short(v: f64) -> String {
    let one = |x: f64| {
        let s = format!("{x:.1}");
        s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
    };
    if v >= 1e6 {
        format!("{}M", one(v / 1e6))
    } else if v >= 1e3 {
        format!("{}k", one(v / 1e3))
    } else {
        one(v)
    }
}

/// A time-axis label: 0s, 2.5s, 90s, 5m, 1h30m.
fn fmt_secs(t: f64) -> String {
    let one = |x: f64| {
        let s = format!("{x:.1}");
        s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
    };
    let whole = t.round() as u64;
    if t < 120.0 {
        format!("{}s", one(t))
    } else if t < 7200.0 {
        match whole % 60 {
            0 => format!("{}m", whole / 60),
            s => format!("{}m{s}s", whole / 60),
        }
    } else {
        match (whole % 3600) / 60 {
            0 => format!("{}h", whole / 3600),
            m => format!("{}h{m}m", whole / 3600),
        }
    }
}

// ---- faults and events ----

fn faults(o: &mut String, s: &RunSummary) {
    if s.faults.is_empty() {
        return;
    }
    o.push_str(
        "<section id=\"faults\"><h2>faults</h2>\n<table><tr><th>#</th><th class=\"l\">name</th>\
         <th class=\"l\">type</th><th class=\"l\">target</th><th class=\"l\">window</th>\
         <th class=\"l\">impact</th>\
         <th>errors during</th><th class=\"l\">unavailability</th><th>p99 recovery</th>\
         <th class=\"l\">status</th></tr>\n",
    );
    for f in &s.faults {
        let window = match (f.injected_at_secs, f.healed_at_secs) {
            (Some(i), Some(h)) => format!("{i:.2}s → {h:.2}s"),
            (Some(i), None) => format!("{i:.2}s → not healed"),
            _ => "not injected".into(),
        };
        let impact = match &f.impact {
            Some(i) => {
                let mut t = format!(
                    "{:.0} ms{}",
                    i.window_ms,
                    if i.recovered { "" } else { " (not recovered)" }
                );
                for (k, n) in &i.safety {
                    t.push_str(&format!("; {k} {n}"));
                }
                t
            }
            None => "-".into(),
        };
        let unavail: Vec<String> = f
            .unavailability
            .iter()
            .map(|u| match u.window_secs {
                Some(w) => format!(
                    "{}: {w:.2}s (first error at {:.2}s)",
                    u.workload, u.first_error_secs
                ),
                None => format!(
                    "{}: errors from {:.2}s, no success after",
                    u.workload, u.first_error_secs
                ),
            })
            .collect();
        let status = match (&f.heal_error, &f.skipped) {
            (Some(e), _) => format!("<span class=\"fail-t\">HEAL FAILED: {}</span>", esc(e)),
            (None, Some(sk)) => format!("skipped: {}", esc(sk)),
            (None, None) if f.injected_at_secs.is_some() && f.healed_at_secs.is_some() => {
                "healed".into()
            }
            (None, None) => "-".into(),
        };
        let _ = writeln!(
            o,
            "<tr><td>{}</td><td class=\"l m\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td>\
             <td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td class=\"l\">{}</td><td>{}</td>\
             <td class=\"l\">{status}</td></tr>",
            f.index,
            esc(&f.name),
            esc(&f.kind),
            match &f.imitation {
                Some(i) => format!("{}<br><small>{}</small>", esc(&f.target), esc(i)),
                None => esc(&f.target),
            },
            esc(&window),
            esc(&impact),
            fmt_count(f.errors_during),
            if unavail.is_empty() {
                "none".into()
            } else {
                unavail.iter().map(|u| esc(u)).collect::<Vec<_>>().join("<br>")
            },
            f.p99_recovery_secs
                .map(|r| format!("{r:.1}s"))
                .unwrap_or_else(|| "-".into()),
        );
    }
    o.push_str("</table></section>\n");
}

/// At most this many events are listed (the rest are counted).
const MAX_EVENTS: usize = 500;

fn events(o: &mut String, s: &RunSummary) {
    if s.events.is_empty() {
        return;
    }
    o.push_str(
        "<section id=\"events\"><h2>events</h2>\n<table><tr><th>at</th><th class=\"l\">kind</th>\
         <th class=\"l\">detail</th></tr>\n",
    );
    for e in s.events.iter().take(MAX_EVENTS) {
        let kind = serde_json::to_value(e.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let _ = writeln!(
            o,
            "<tr><td>{:.3}s</td><td class=\"l m\">{}</td><td class=\"l\">{}</td></tr>",
            e.at_secs,
            esc(&kind),
            esc(&e.detail)
        );
    }
    o.push_str("</table>");
    if s.events.len() > MAX_EVENTS {
        let _ = write!(
            o,
            "<p class=\"muted\">… and {} more events (see summary.json)</p>",
            s.events.len() - MAX_EVENTS
        );
    }
    o.push_str("</section>\n");
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::metrics::LatencyStats;
    use crate::summary::*;

    /// A small summary with one op, a fault, a failed check and an evil workload name.
    pub(crate) fn sample() -> RunSummary {
        let lat = LatencyStats {
            p50: 400,
            p90: 900,
            p99: 2_000,
            p999: 9_000,
            max: 50_000,
            mean: 500.0,
            min: 90,
        };
        let series = (0..10)
            .map(|i| SeriesPoint {
                workload: "q<1>".into(),
                op: "get".into(),
                start_secs: i as f64,
                end_secs: i as f64 + 1.0,
                ok: if i == 4 { 0 } else { 100 },
                errors: if i == 4 { 30 } else { 0 },
                p50_us: 400,
                p99_us: 2_000 + 1_000 * i,
                max_us: 50_000,
            })
            .collect();
        RunSummary {
            incomplete: vec![],
            scenario: "demo & <friends>".into(),
            seed: 42,
            verdict: Verdict::Fail,
            duration_secs: 10.0,
            planned_duration_secs: 10.0,
            interrupted: false,
            run_id: "abc".into(),
            shard: None,
            shard_index: None,
            shard_count: None,
            run_key: None,
            started_at: "2025-01-01T00:00:00Z".into(),
            start_sync: None,
            start_skew: None,
            target: "rediss://staging.invalid:25061".into(),
            server: ServerInfo {
                server_name: "valkey".into(),
                version: "8.1.1".into(),
                redis_version: "7.2.4".into(),
            },
            workloads: vec![WorkloadSummary {
                id: "q<1>".into(),
                kind: crate::plan::WorkloadType::Lock,
                clients: 4,
                model: "closed loop".into(),
                late_starts: 0,
                dropped_starts: 0,
                send_lag_us: None,
                generator_bound: None,
                errors: 30,
                error_rate: 0.03,
            }],
            ops: vec![OpSummary {
                workload: "q<1>".into(),
                op: "get".into(),
                count: 930,
                ok: 900,
                errors: 30,
                error_rate: 30.0 / 930.0,
                rate_per_sec: 93.0,
                latency_us: lat,
                service_us: lat,
                errors_by_kind: [("timeout".to_string(), 30)].into_iter().collect(),
            }],
            counters: vec![
                CounterValue {
                    workload: "q<1>".into(),
                    name: "acquired".into(),
                    kind: CounterKind::Total,
                    covers: None,
                    value: 900.0,
                },
                CounterValue {
                    workload: "q<1>".into(),
                    name: "violations".into(),
                    kind: CounterKind::Safety,
                    covers: None,
                    value: 2.0,
                },
                CounterValue {
                    workload: "q<1>".into(),
                    name: "lost_while_held".into(),
                    kind: CounterKind::Safety,
                    covers: None,
                    value: 0.0,
                },
            ],
            checks: vec![
                CheckResult {
                    metric: "q<1>.get.p99".into(),
                    condition: "< 5ms".into(),
                    value: Some(2000.0),
                    passed: true,
                    shown: "2.00ms".into(),
                    origin: CheckOrigin::Threshold,
                },
                CheckResult {
                    metric: "q<1>.error_rate".into(),
                    condition: "< 1%".into(),
                    value: Some(0.032),
                    passed: false,
                    shown: "3.226%".into(),
                    origin: CheckOrigin::Threshold,
                },
            ],
            faults: vec![FaultRecord {
                inject_error: None,
                recover_within_secs: None,
                imitation: None,
                index: 0,
                name: "slow \"net\"".into(),
                kind: "latency".into(),
                target: "primary via proxy".into(),
                injected_at_secs: Some(3.0),
                healed_at_secs: Some(5.0),
                heal_error: None,
                skipped: None,
                unavailability: vec![Unavailability {
                    workload: "q<1>".into(),
                    first_error_secs: 4.0,
                    recovered_secs: Some(5.0),
                    window_secs: Some(1.0),
                }],
                p99_recovery_secs: Some(1.0),
                errors_during: 30,
                impact: None,
            }],
            events: vec![Event {
                at_secs: 3.0,
                kind: EventKind::FaultInjected,
                detail: "latency <50ms>".into(),
            }],
            heal_failures: vec!["#1 kill: <oops>".into()],
            interval_secs: 1.0,
            series,
            migration: None,
            slot_errors: vec![],
            generator_cpu_secs: Some(4.2),
        }
    }

    #[test]
    fn self_contained_escaped_and_shaded() {
        let h = render(&sample());
        assert!(h.starts_with("<!doctype html>"));
        for bad in [
            "http://", "https://", "<script", " src=", " href=", "@import", "url(",
        ] {
            assert!(!h.contains(bad), "found {bad}");
        }
        assert!(h.contains("demo &amp; &lt;friends&gt;"));
        assert!(!h.contains("<friends>") && !h.contains("q<1>"));
        assert!(h.contains(">FAIL</div>"));
        assert_eq!(h.matches("<svg").count(), 2);
        assert_eq!(h.matches("class=\"fault-window\"").count(), 2);
        assert!(h.contains("#0 slow &quot;net&quot;"));
        assert!(h.contains("chip unsafe\">violations 2"));
        assert!(h.contains("HEAL") || h.contains("heal failures"));
        // The interval with no successful op leaves a gap in the latency lines.
        assert!(h.matches(" M").count() >= 2);
        // Balanced tags for the elements we open.
        for t in ["svg", "table", "section", "tr", "g", "dl", "div"] {
            let opened =
                h.matches(&format!("<{t}>")).count() + h.matches(&format!("<{t} ")).count();
            assert_eq!(opened, h.matches(&format!("</{t}>")).count(), "<{t}>");
        }
    }

    #[test]
    fn axis_helpers() {
        assert_eq!(nice_ceil(730.0), 1000.0);
        assert_eq!(nice_ceil(1.3), 2.0);
        assert_eq!(nice_ceil(2100.0), 2500.0);
        assert_eq!(time_step(10.0), 2.0);
        assert_eq!(time_step(600.0), 120.0);
        assert_eq!(fmt_short(1500.0), "1.5k");
        assert_eq!(fmt_short(250.0), "250");
        assert_eq!(fmt_secs(0.5), "0.5s");
        assert_eq!(fmt_secs(4.0), "4s");
        assert_eq!(fmt_secs(600.0), "10m");
        assert_eq!(fmt_secs(5400.0), "90m");
        assert_eq!(fmt_secs(9000.0), "2h30m");
    }
}
