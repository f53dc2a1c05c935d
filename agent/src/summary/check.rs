//! Thresholds → checks: read each metric from the summary (or, for a phase, from the exact
//! interval histograms of that phase) and compare. Used by the summary builder and by `merge`.

use std::time::Duration;

use hdrhistogram::Histogram;

use super::phase;
use super::{CheckResult, RunSummary};
use crate::metrics::{Collector, LatencyStats, OpAcc};
use crate::plan::{MetricPath, Phase, Stat, Threshold};

/// A phase's figures for one workload, however they were gathered (a run's collector, or the
/// interval logs of merged shards): per operation, its successes' latencies and its errors; and
/// how long the phase lasted.
pub struct PhaseFigures {
    pub ops: Vec<PhaseOp>,
    pub secs: f64,
}

pub struct PhaseOp {
    pub op: String,
    /// Latency from the intended start of the successful operations (µs).
    pub latency: Histogram<u64>,
    pub errors: u64,
}

/// Evaluate every threshold; phase thresholds from the run's collector.
pub fn evaluate(
    thresholds: &[Threshold],
    s: &RunSummary,
    collector: Option<&Collector>,
) -> Vec<CheckResult> {
    evaluate_with(thresholds, s, &|t, p| {
        collector.and_then(|c| collector_phase(t, p, s, c))
    })
}

/// Evaluate every threshold; `phase` gives a phase threshold's figures (none: no data).
pub fn evaluate_with(
    thresholds: &[Threshold],
    s: &RunSummary,
    phase: &dyn Fn(&Threshold, &Phase) -> Option<PhaseFigures>,
) -> Vec<CheckResult> {
    thresholds
        .iter()
        .map(|t| {
            let value = match &t.phase {
                None => whole_run_value(t, s),
                Some(p) => phase(t, p).and_then(|f| phase_value(t, &f)),
            };
            judged(t, value)
        })
        .collect()
}

fn judged(t: &Threshold, value: Option<f64>) -> CheckResult {
    let passed = value.is_some_and(|v| t.op.holds(v, t.value));
    CheckResult {
        metric: t.metric.clone(),
        condition: t.condition.clone(),
        value,
        passed,
        shown: show(t, value),
        origin: super::CheckOrigin::Threshold,
    }
}

fn stat_of(
    stat: Stat,
    count: u64,
    ok: u64,
    errors: u64,
    secs: f64,
    lat: &LatencyStats,
) -> Option<f64> {
    Some(match stat {
        Stat::Count => count as f64,
        Stat::Rate => count as f64 / secs.max(1e-9),
        Stat::Errors => errors as f64,
        Stat::ErrorRate => errors as f64 / (count.max(1)) as f64,
        _ if ok == 0 => return None,
        Stat::P50 => lat.p50 as f64,
        Stat::P90 => lat.p90 as f64,
        Stat::P99 => lat.p99 as f64,
        Stat::P999 => lat.p999 as f64,
        Stat::Max => lat.max as f64,
        Stat::Mean => lat.mean,
    })
}

fn whole_run_value(t: &Threshold, s: &RunSummary) -> Option<f64> {
    match &t.path {
        MetricPath::Op { op, stat } => {
            let o = s.op(&t.workload, op)?;
            stat_of(
                *stat,
                o.count,
                o.ok,
                o.errors,
                s.duration_secs,
                &o.latency_us,
            )
        }
        MetricPath::Counter(c) if c == "errors" || c == "error_rate" => {
            let (count, errors) = s
                .ops
                .iter()
                .filter(|o| o.workload == t.workload)
                .fold((0, 0), |a, o| (a.0 + o.count, a.1 + o.errors));
            Some(if c == "errors" {
                errors as f64
            } else {
                errors as f64 / count.max(1) as f64
            })
        }
        MetricPath::Counter(c) => s.counter(&t.workload, c),
    }
}

/// A phase's figures from the run's own slots.
pub(super) fn collector_phase(
    t: &Threshold,
    p: &Phase,
    s: &RunSummary,
    c: &Collector,
) -> Option<PhaseFigures> {
    let end = Duration::from_secs_f64(s.duration_secs);
    let windows: Vec<(Duration, Duration)> = phase::windows(p, &s.faults, s.duration_secs)
        .into_iter()
        .map(|w| {
            (
                Duration::from_secs_f64(w.from),
                Duration::from_secs_f64(w.to.min(s.duration_secs + 3600.0)),
            )
        })
        .collect();
    if windows.is_empty() {
        return None;
    }
    let w = c.workloads.iter().position(|m| m.id == t.workload)?;
    let mut acc: Vec<OpAcc> = vec![];
    let mut secs = 0.0;
    for (from, to) in &windows {
        secs += to.min(&end).saturating_sub(*from).as_secs_f64();
        let part = c.window(*from, *to);
        for (i, o) in part.into_iter().nth(w)?.into_iter().enumerate() {
            if acc.len() <= i {
                acc.push(o);
            } else {
                acc[i].add(&o);
            }
        }
    }
    let names = c.workloads[w].op_names();
    Some(PhaseFigures {
        ops: acc
            .into_iter()
            .zip(names)
            .map(|(a, op)| PhaseOp {
                op,
                errors: a.error_count(),
                latency: a.corrected,
            })
            .collect(),
        secs,
    })
}

/// A phase threshold's value from its phase's figures.
fn phase_value(t: &Threshold, f: &PhaseFigures) -> Option<f64> {
    match &t.path {
        MetricPath::Op { op, stat } => {
            let o = f.ops.iter().find(|o| &o.op == op)?;
            let (ok, errors) = (o.latency.len(), o.errors);
            stat_of(
                *stat,
                ok + errors,
                ok,
                errors,
                f.secs,
                &LatencyStats::of(&o.latency),
            )
        }
        MetricPath::Counter(cn) if cn == "errors" || cn == "error_rate" => {
            let (count, errors) = f.ops.iter().fold((0, 0), |a, o| {
                (a.0 + o.latency.len() + o.errors, a.1 + o.errors)
            });
            Some(if cn == "errors" {
                errors as f64
            } else {
                errors as f64 / count.max(1) as f64
            })
        }
        MetricPath::Counter(_) => None,
    }
}

/// A value shown in its natural unit.
fn show(t: &Threshold, v: Option<f64>) -> String {
    let Some(v) = v else { return "no data".into() };
    match &t.path {
        MetricPath::Op { stat, .. } if stat.is_latency() => crate::units::fmt_us(v),
        MetricPath::Op {
            stat: Stat::ErrorRate,
            ..
        } => format!("{:.3}%", v * 100.0),
        MetricPath::Counter(c) if c == "error_rate" => format!("{:.3}%", v * 100.0),
        MetricPath::Op {
            stat: Stat::Rate, ..
        } => format!("{v:.1}/s"),
        _ if v.fract() == 0.0 => format!("{v:.0}"),
        _ => format!("{v:.3}"),
    }
}
