//! Old against new: run one scenario with the same seed against a baseline and a candidate, one
//! after the other, and put the two summaries side by side (rates, latency percentiles with
//! candidate/baseline ratios, errors, safety counters, verdicts).
//!
//! A side without a URL is embedded: Debian's `redis-server` (Redis 7.0) as the baseline, the
//! embedded `valkey-server` as the candidate, each started by [`crate::run::run`] with the
//! scenario's own topology (so process faults and Sentinel work) and stopped after its run.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use tokio_util::sync::CancellationToken;

use crate::plan::Plan;
use crate::report::{fmt_count, fmt_us};
use crate::run::{RunError, RunOptions, TargetChoice};
use crate::summary::{OpSummary, RunSummary};

/// Which server a side runs against.
#[derive(Debug, Clone)]
pub enum SideTarget {
    Url(String),
    /// An embedded topology started from this server binary.
    Embedded(PathBuf),
}

/// What `compare` needs beyond the plan.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub baseline: Option<String>,
    pub candidate: Option<String>,
    /// `redis-server` for an embedded baseline (default: `PATH`).
    pub redis_server: Option<PathBuf>,
    /// `valkey-server` for an embedded candidate (default: the usual search).
    pub valkey_server: Option<PathBuf>,
    /// Everything else of a run (duration, seed, TLS, quiet, …); its `target`,
    /// `valkey_server` and `password` are set per side.
    pub run: RunOptions,
}

/// One finished side.
pub type SideRun = crate::run::Outcome;

pub use crate::valkey::embedded::locate_redis;

/// Resolve both sides: a URL, or the binary of an embedded topology.
pub fn sides(opts: &Options) -> Result<(SideTarget, SideTarget), RunError> {
    let embedded_side = opts.baseline.is_none() || opts.candidate.is_none();
    if embedded_side && std::env::var("REDIS_URL").is_ok_and(|s| !s.is_empty()) {
        // run::run would pick REDIS_URL up instead of starting the embedded server.
        return Err(RunError::Refused(
            "REDIS_URL is set, so an embedded side would run against it: pass both --baseline \
             and --candidate, or unset REDIS_URL to compare embedded Redis 7.0 with embedded Valkey"
                .into(),
        ));
    }
    let b = match &opts.baseline {
        Some(u) => SideTarget::Url(u.clone()),
        None => SideTarget::Embedded(
            locate_redis(opts.redis_server.as_deref()).map_err(RunError::Runtime)?,
        ),
    };
    let c = match &opts.candidate {
        Some(u) => SideTarget::Url(u.clone()),
        None => SideTarget::Embedded(
            crate::valkey::embedded::locate_valkey(opts.valkey_server.as_deref())
                .map_err(RunError::Runtime)?,
        ),
    };
    Ok((b, c))
}

/// Run `plan` against one side.
pub async fn run_side(
    plan: &Plan,
    side: &SideTarget,
    base: &RunOptions,
    password: Option<String>,
    shutdown: CancellationToken,
) -> Result<SideRun, RunError> {
    let mut opts = base.clone();
    opts.password = password;
    match side {
        SideTarget::Url(u) => {
            opts.target = TargetChoice::Url(u.clone());
        }
        SideTarget::Embedded(bin) => {
            opts.target = TargetChoice::Embedded;
            opts.valkey_server = Some(bin.clone());
        }
    }
    crate::run::run(plan, &opts, shutdown).await
}

/// Baseline first, then the candidate. `VALKEY_PASSWORD` (in `opts.run.password`) only fills
/// the candidate's URL: the baseline is the old server with its own credentials.
pub async fn compare(
    plan: &Plan,
    opts: &Options,
    shutdown: CancellationToken,
) -> Result<(SideRun, SideRun), RunError> {
    let (b, c) = sides(opts)?;
    let base = run_side(plan, &b, &opts.run, None, shutdown.clone()).await?;
    if shutdown.is_cancelled() {
        return Err(RunError::Runtime(
            "interrupted after the baseline run".into(),
        ));
    }
    let cand = run_side(plan, &c, &opts.run, opts.run.password.clone(), shutdown).await?;
    Ok((base, cand))
}

fn ratio(b: f64, c: f64) -> String {
    if b > 0.0 && c.is_finite() {
        format!("{:.2}x", c / b)
    } else {
        "-".into()
    }
}

fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        let s = fmt_count(v.abs() as u64);
        if v < 0.0 {
            format!("-{s}")
        } else {
            s
        }
    } else {
        format!("{v:.3}")
    }
}

fn server_of(s: &RunSummary) -> String {
    if s.server.version.is_empty() {
        "unknown server".into()
    } else {
        format!("{} {}", s.server.server_name, s.server.version)
    }
}

/// The side-by-side text: per op ops/s, p50/p99/p99.9 with candidate/baseline ratios and
/// errors; then counters; then each side's verdict and failed checks.
pub fn render(b: &RunSummary, c: &RunSummary) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "compare {}  seed {}  ran {:.1}s / {:.1}s",
        c.scenario, c.seed, b.duration_secs, c.duration_secs
    );
    let _ = writeln!(o, "baseline   {} ({})", b.target, server_of(b));
    let _ = writeln!(o, "candidate  {} ({})", c.target, server_of(c));
    let _ = writeln!(
        o,
        "one after the other, same seed; cand/base above 1.00x: higher latency or rate on the candidate"
    );
    let keys = union(
        b.ops.iter().map(|x| (&x.workload, &x.op)),
        c.ops.iter().map(|x| (&x.workload, &x.op)),
    );
    let counters = union(
        b.counters.iter().map(|x| (&x.workload, &x.name)),
        c.counters.iter().map(|x| (&x.workload, &x.name)),
    );
    // Label column: wide enough for every `workload.op` and `workload.counter`.
    let w = keys
        .iter()
        .chain(counters.iter())
        .map(|(a, b)| a.len() + b.len() + 1)
        .max()
        .unwrap_or(0)
        .max(22);
    for (wl, op) in &keys {
        op_rows(&mut o, w, wl, op, b.op(wl, op), c.op(wl, op));
    }
    if !counters.is_empty() {
        counter_rows(&mut o, w, &counters, b, c);
    }
    let _ = writeln!(o);
    for (label, s) in [("baseline", b), ("candidate", c)] {
        verdict_line(&mut o, label, s);
    }
    o
}

/// The baseline's `(workload, name)` pairs in order, then the candidate's that are new.
fn union<'a>(
    b: impl Iterator<Item = (&'a String, &'a String)>,
    c: impl Iterator<Item = (&'a String, &'a String)>,
) -> Vec<(String, String)> {
    let mut keys: Vec<(String, String)> = b.map(|(w, n)| (w.clone(), n.clone())).collect();
    for (w, n) in c {
        let k = (w.clone(), n.clone());
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys
}

/// One operation's block: ops/s, latency percentiles with ratios, errors. `w` is the label
/// column's width.
fn op_rows(
    o: &mut String,
    w: usize,
    wl: &str,
    op: &str,
    bo: Option<&OpSummary>,
    co: Option<&OpSummary>,
) {
    let wh = w + 2;
    let _ = writeln!(
        o,
        "\n{:<wh$} {:>12} {:>12} {:>10}",
        format!("{wl}.{op}"),
        "baseline",
        "candidate",
        "cand/base"
    );
    let rate = |x: Option<&OpSummary>| x.map(|x| x.rate_per_sec);
    let (br, cr) = (rate(bo), rate(co));
    let cell = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map(f).unwrap_or_else(|| "-".into());
    let _ = writeln!(
        o,
        "  {:<w$} {:>12} {:>12} {:>10}",
        "ops/s",
        cell(br, &|v| format!("{v:.1}")),
        cell(cr, &|v| format!("{v:.1}")),
        ratio(br.unwrap_or(0.0), cr.unwrap_or(f64::NAN))
    );
    type Pick = fn(&crate::metrics::LatencyStats) -> u64;
    let picks: [(&str, Pick); 3] = [
        ("p50", |l| l.p50),
        ("p99", |l| l.p99),
        ("p99.9", |l| l.p999),
    ];
    for (name, pick) in picks {
        let lat =
            |x: Option<&OpSummary>| x.filter(|x| x.ok > 0).map(|x| pick(&x.latency_us) as f64);
        let (bl, cl) = (lat(bo), lat(co));
        let _ = writeln!(
            o,
            "  {:<w$} {:>12} {:>12} {:>10}",
            name,
            cell(bl, &fmt_us),
            cell(cl, &fmt_us),
            ratio(bl.unwrap_or(0.0), cl.unwrap_or(f64::NAN))
        );
    }
    let errs = |x: Option<&OpSummary>| x.map(|x| x.errors as f64);
    let _ = writeln!(
        o,
        "  {:<w$} {:>12} {:>12}",
        "errors",
        cell(errs(bo), &num),
        cell(errs(co), &num)
    );
}

/// The counters of both sides, one row each.
fn counter_rows(
    o: &mut String,
    w: usize,
    counters: &[(String, String)],
    b: &RunSummary,
    c: &RunSummary,
) {
    let wh = w + 2;
    let _ = writeln!(
        o,
        "\n{:<wh$} {:>12} {:>12}",
        "counters", "baseline", "candidate"
    );
    for (wl, n) in counters {
        let cell = |s: &RunSummary| s.counter(wl, n).map(num).unwrap_or_else(|| "-".into());
        let _ = writeln!(
            o,
            "  {:<w$} {:>12} {:>12}",
            format!("{wl}.{n}"),
            cell(b),
            cell(c)
        );
    }
}

/// A side's verdict, with its failed checks and heals when there are any.
fn verdict_line(o: &mut String, label: &str, s: &RunSummary) {
    let failed: Vec<String> = s
        .checks
        .iter()
        .filter(|k| !k.passed)
        .map(|k| format!("{} {} (got {})", k.metric, k.condition, k.shown))
        .chain(s.heal_failures.iter().map(|h| format!("heal failed: {h}")))
        .collect();
    if failed.is_empty() {
        let _ = writeln!(o, "{label:<10} {} ({} checks)", s.verdict, s.checks.len());
    } else {
        let _ = writeln!(o, "{label:<10} {}: {}", s.verdict, failed.join("; "));
    }
}

/// Write `DIR/baseline/…`, `DIR/candidate/…` (each a normal run output) and `DIR/compare.txt`.
pub fn write_outputs(dir: &Path, b: &SideRun, c: &SideRun) -> std::io::Result<()> {
    crate::report::write_outputs(&dir.join("baseline"), &b.summary, &b.hlog, &b.histories)?;
    crate::report::write_outputs(&dir.join("candidate"), &c.summary, &c.hlog, &c.histories)?;
    std::fs::write(dir.join("compare.txt"), render(&b.summary, &c.summary))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_and_numbers() {
        assert_eq!(ratio(100.0, 150.0), "1.50x");
        assert_eq!(ratio(0.0, 150.0), "-");
        assert_eq!(ratio(100.0, f64::NAN), "-");
        assert_eq!(num(1234.0), "1,234");
        assert_eq!(num(-3.0), "-3");
        assert_eq!(num(0.5), "0.500");
    }
}
