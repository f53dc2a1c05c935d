//! The summary, built once: a pure function of what the run recorded — the plan, the metrics
//! collector (histograms, intervals, every declared counter), the events and the fault records
//! the timeline returned. Fault impact, threshold checks and the verdict are computed here, not patched in
//! afterwards by whoever happens to hold the summary.

use std::time::Duration;

use super::*;
use crate::metrics::{Collector, LatencyStats};
use crate::plan::{LoadModel, Plan};

/// Everything a run recorded, as the builder's input.
pub struct Recorded<'a> {
    pub plan: &'a Plan,
    pub collector: &'a Collector,
    /// How long the load ran (shorter than planned when interrupted).
    pub ran: Duration,
    pub interrupted: bool,
    /// The target as shown (no password), or "embedded …".
    pub target: String,
    pub server: ServerInfo,
    pub events: Vec<Event>,
    /// One record per fault occurrence, as the timeline returned them.
    pub faults: Vec<FaultRecord>,
    /// The interval length of the series and the `.hlog`.
    pub interval: Duration,
    /// A cutover rehearsal's report.
    pub migration: Option<MigrationReport>,
    /// How time zero was agreed with the other shards, and the run key they share.
    pub start_sync: Option<StartSync>,
    pub run_key: Option<String>,
    /// CPU seconds the agent used while the load ran.
    pub generator_cpu_secs: f64,
}

/// Build the summary of a run, judged.
pub fn build(r: Recorded<'_>) -> RunSummary {
    let Recorded {
        plan,
        collector: c,
        ran,
        interrupted,
        target,
        server,
        events,
        mut faults,
        interval,
        migration,
        start_sync,
        run_key,
        generator_cpu_secs,
    } = r;
    let secs = ran.as_secs_f64().max(1e-3);
    let mut ops = vec![];
    let mut workloads = vec![];
    let mut counters = vec![];
    for (wi, (w, m)) in plan.workloads.iter().zip(c.workloads.iter()).enumerate() {
        let names = m.op_names();
        let mut werr = 0;
        let mut wcount = 0;
        for (oi, name) in names.iter().enumerate() {
            let Some(acc) = c.totals[wi].get(oi) else {
                ops.push(empty_op(&w.id, name));
                continue;
            };
            let errors = acc.error_count();
            let count = acc.ok() + errors;
            werr += errors;
            wcount += count;
            ops.push(OpSummary {
                workload: w.id.clone(),
                op: name.clone(),
                count,
                ok: acc.ok(),
                errors,
                error_rate: errors as f64 / count.max(1) as f64,
                rate_per_sec: (count as f64 / secs * 10.0).round() / 10.0,
                latency_us: LatencyStats::of(&acc.corrected),
                service_us: LatencyStats::of(&acc.service),
                errors_by_kind: crate::valkey::ErrorKind::ALL
                    .iter()
                    .filter(|k| acc.errors[k.index()] > 0)
                    .map(|k| (k.name().to_string(), acc.errors[k.index()]))
                    .collect(),
            });
        }
        for (d, v) in m.counters.snapshot() {
            counters.push(CounterValue {
                workload: w.id.clone(),
                name: d.name.to_string(),
                value: v,
                kind: d.kind,
                covers: d.covers.map(str::to_string),
            });
        }
        for (n, kind, v) in m.custom_snapshot() {
            counters.push(CounterValue {
                workload: w.id.clone(),
                name: n,
                value: v as f64,
                kind,
                covers: None,
            });
        }
        workloads.push(WorkloadSummary {
            id: w.id.clone(),
            kind: w.kind.type_name().into(),
            clients: w.clients,
            model: match &w.load {
                LoadModel::Closed => "closed loop".into(),
                LoadModel::Open(s) if s.stages.is_empty() => {
                    format!("open model, {} ops/s", s.start)
                }
                LoadModel::Open(s) => format!(
                    "open model, {} stages, peak {} ops/s",
                    s.stages.len(),
                    s.peak()
                ),
            },
            late_starts: m.late_starts.load(std::sync::atomic::Ordering::Relaxed),
            dropped_starts: m.dropped_starts.load(std::sync::atomic::Ordering::Relaxed),
            errors: werr,
            error_rate: werr as f64 / wcount.max(1) as f64,
            send_lag_us: m.send_lag(),
            generator_bound: m
                .send_lag()
                .and_then(|l| super::generator::bound(&l, w.clients)),
        });
    }
    let mut series = vec![];
    for iv in &c.coarse(interval) {
        for o in &iv.ops {
            let m = &c.workloads[o.workload];
            series.push(SeriesPoint {
                workload: m.id.clone(),
                op: m.op_names().get(o.op).cloned().unwrap_or_default(),
                start_secs: iv.start.as_secs_f64(),
                end_secs: iv.end.as_secs_f64(),
                ok: o.ok,
                errors: o.errors.iter().sum(),
                p50_us: o.p50_us,
                p99_us: o.p99_us,
                max_us: o.max_us,
            });
        }
    }
    let mut slot_errors = vec![];
    for iv in &c.intervals {
        for o in iv.ops.iter().filter(|o| o.errors.iter().any(|e| *e > 0)) {
            let m = &c.workloads[o.workload];
            slot_errors.push(SlotErrors {
                workload: m.id.clone(),
                op: m.op_names().get(o.op).cloned().unwrap_or_default(),
                from_secs: micros(iv.start),
                to_secs: micros(iv.end),
                errors: o.errors.iter().sum(),
            });
        }
    }
    let heal_failures = faults
        .iter()
        .filter_map(|f| {
            f.heal_error
                .as_ref()
                .map(|e| format!("#{} {} ({}): {e}", f.index, f.name, f.kind))
        })
        .collect();
    let duration_secs = (secs * 1000.0).round() / 1000.0;
    impact::analyse(&mut faults, c, duration_secs);
    let started = c.started_wall;
    let mut s = RunSummary {
        scenario: plan.name.clone(),
        seed: plan.seed,
        verdict: Verdict::Fail,
        duration_secs,
        planned_duration_secs: plan.duration.as_secs_f64(),
        interrupted,
        run_id: run_id(plan.seed, started),
        shard: plan.shard.map(|s| s.to_string()),
        shard_index: plan.shard.map(|s| s.index),
        shard_count: plan.shard.map(|s| s.count),
        run_key,
        started_at: humantime::format_rfc3339_micros(started).to_string(),
        start_sync,
        start_skew: None,
        target,
        server,
        workloads,
        ops,
        counters,
        checks: vec![],
        faults,
        events,
        heal_failures,
        interval_secs: interval.as_secs_f64(),
        series,
        migration,
        slot_errors,
        generator_cpu_secs: Some((generator_cpu_secs * 1000.0).round() / 1000.0),
    };
    s.checks = check::evaluate(&plan.thresholds, &s, Some(c));
    let implicit = implicit_checks(&s.checks, &s.counters);
    s.checks.extend(implicit);
    s.checks.extend(migration_checks(s.migration.as_ref()));
    s.verdict = verdict(&s);
    s
}

/// A cutover rehearsal's copy must be whole: every difference the verify found fails the run,
/// and a verify that could not run is inconclusive.
pub fn migration_checks(m: Option<&MigrationReport>) -> Vec<CheckResult> {
    let Some(v) = m.and_then(|m| m.verify.as_ref()) else {
        return vec![];
    };
    vec![match &v.error {
        None => CheckResult {
            metric: "migration.verify.differences".into(),
            condition: "== 0".into(),
            value: Some(v.differences as f64),
            passed: v.differences == 0,
            shown: format!("{} of {} keys", v.differences, v.keys_checked),
            origin: CheckOrigin::Safety,
        },
        Some(e) => CheckResult {
            metric: "migration.verify".into(),
            condition: "ran".into(),
            value: None,
            passed: false,
            shown: format!("could not verify: {e}"),
            origin: CheckOrigin::Coverage,
        },
    }]
}

/// The checks every run gets without asking: each safety counter without a whole-run threshold
/// of its own must be 0 (a scenario allows some with e.g. `"tasks.redelivered" = "< 50"`), and
/// an oracle that could check nothing of what happened is inconclusive, which fails.
pub fn implicit_checks(explicit: &[CheckResult], counters: &[CounterValue]) -> Vec<CheckResult> {
    let mut out = vec![];
    for c in counters {
        let metric = format!("{}.{}", c.workload, c.name);
        match c.kind {
            crate::plan::CounterKind::Safety => {
                if explicit.iter().any(|t| t.metric == metric) {
                    continue;
                }
                out.push(CheckResult {
                    shown: format!("{}", c.value),
                    passed: c.value == 0.0,
                    value: Some(c.value),
                    condition: "== 0".into(),
                    metric,
                    origin: CheckOrigin::Safety,
                });
            }
            crate::plan::CounterKind::Checked => {
                let Some(total_name) = &c.covers else {
                    continue;
                };
                let total = counters
                    .iter()
                    .find(|t| t.workload == c.workload && &t.name == total_name)
                    .map(|t| t.value)
                    .unwrap_or(0.0);
                if total > 0.0 {
                    out.push(CheckResult {
                        shown: if c.value > 0.0 {
                            format!("{} of {total} {total_name}", c.value)
                        } else {
                            format!(
                                "0 of {total} {total_name}: inconclusive, nothing could be checked"
                            )
                        },
                        passed: c.value > 0.0,
                        value: Some(c.value),
                        condition: "> 0".into(),
                        metric,
                        origin: CheckOrigin::Coverage,
                    });
                }
            }
            _ => {}
        }
    }
    out
}

/// Fail when a check failed or a heal failed.
pub fn verdict(s: &RunSummary) -> Verdict {
    if s.checks.iter().any(|c| !c.passed) || !s.heal_failures.is_empty() {
        Verdict::Fail
    } else {
        Verdict::Pass
    }
}

/// Seconds, rounded to the microsecond.
fn micros(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e6
}

fn empty_op(w: &str, op: &str) -> OpSummary {
    OpSummary {
        workload: w.into(),
        op: op.into(),
        count: 0,
        ok: 0,
        errors: 0,
        error_rate: 0.0,
        rate_per_sec: 0.0,
        latency_us: Default::default(),
        service_us: Default::default(),
        errors_by_kind: Default::default(),
    }
}

/// A run's id: a pure function of its seed, its start and the process id (the OTLP exporter
/// derives the same id at the start of the run for its resource).
pub fn run_id(seed: u64, t: std::time::SystemTime) -> String {
    let nanos = t
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut r = crate::rng::Rng::new(nanos ^ seed.rotate_left(32) ^ std::process::id() as u64);
    format!("{:016x}", r.next_u64())
}
