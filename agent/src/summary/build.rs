//! The summary, built once, by one judge. A run and a merge of runs each gather their
//! [`Evidence`] — who ran (its [`Meta`]), what it measured (operations, counters, series, slot
//! errors, fault records with their impact, events, the rehearsal's report) and which thresholds
//! apply — and [`judge`] turns it into the one `RunSummary`: thresholds checked, the default
//! safety and coverage rules, the rehearsal's copy, then the verdict. Nothing patches a summary
//! afterwards; `RunSummary { … }` is written here only.

use std::time::Duration;

use super::check::PhaseFigures;
use super::*;
use crate::metrics::{Collector, LatencyStats};
use crate::plan::{LoadModel, Phase, Plan, Threshold};

/// Who ran, when, against what, and how it ended.
#[derive(Debug, Clone)]
pub struct Meta {
    pub scenario: String,
    pub seed: u64,
    /// Computed once per run ([`run_id`]) and used everywhere the run is named.
    pub run_id: String,
    pub shard: Option<crate::plan::Shard>,
    /// A merge of a sharded run: its shard count (the merge itself is no shard).
    pub shard_count: Option<u32>,
    pub run_key: Option<String>,
    /// Time zero, RFC 3339 with microseconds.
    pub started_at: String,
    pub start_sync: Option<StartSync>,
    pub start_skew: Option<StartSkew>,
    /// The target as shown (no password), or "embedded …".
    pub target: String,
    pub server: ServerInfo,
    /// How long the load ran (shorter than planned when interrupted).
    pub duration_secs: f64,
    pub planned_duration_secs: f64,
    pub interrupted: bool,
    /// The interval length of the series and the `.hlog`.
    pub interval_secs: f64,
    /// CPU seconds the agent used while the load ran.
    pub generator_cpu_secs: Option<f64>,
}

/// What a run measured: every figure the summary reports, before anything is judged.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    pub workloads: Vec<WorkloadSummary>,
    pub ops: Vec<OpSummary>,
    pub counters: Vec<CounterValue>,
    pub series: Vec<SeriesPoint>,
    pub slot_errors: Vec<SlotErrors>,
}

/// Where a phase threshold's figures come from: a run's own slots, or the merged slots of shards.
pub trait PhaseSource {
    /// The figures of `t`'s workload over phase `p` of the run `s` describes; `None`: no data.
    fn figures(&self, t: &Threshold, p: &Phase, s: &RunSummary) -> Option<PhaseFigures>;
}

impl PhaseSource for Collector {
    fn figures(&self, t: &Threshold, p: &Phase, s: &RunSummary) -> Option<PhaseFigures> {
        check::collector_phase(t, p, s, self)
    }
}

/// Everything the judge reads.
pub struct Evidence<'a> {
    pub meta: Meta,
    pub measured: Measured,
    /// One record per fault occurrence, its impact already measured (`summary::impact`).
    pub faults: Vec<FaultRecord>,
    pub events: Vec<Event>,
    /// A cutover rehearsal's report.
    pub migration: Option<MigrationReport>,
    /// The thresholds that apply (the plan's, or those a merge re-reads).
    pub thresholds: Vec<Threshold>,
    /// Checks already decided by whoever gathered the evidence (a merge: every shard there and
    /// complete, thresholds it could not re-read), listed first.
    pub prior_checks: Vec<CheckResult>,
    /// Why the run cannot vouch for anything, as its gatherer saw it (a drain cut short); the
    /// judge adds an interruption, failed heals and a run that checked nothing.
    pub incomplete: Vec<String>,
    pub phases: &'a dyn PhaseSource,
}

/// Judge a run: its checks and its verdict, in the one `RunSummary`.
pub fn judge(e: Evidence<'_>) -> RunSummary {
    let Evidence {
        meta,
        measured,
        faults,
        events,
        migration,
        thresholds,
        prior_checks,
        incomplete,
        phases,
    } = e;
    let heal_failures = faults
        .iter()
        .filter_map(|f| {
            f.heal_error
                .as_ref()
                .map(|e| format!("#{} {} ({}): {e}", f.index, f.name, f.kind))
        })
        .collect();
    let mut s = RunSummary {
        scenario: meta.scenario,
        seed: meta.seed,
        verdict: Verdict::Fail,
        duration_secs: meta.duration_secs,
        planned_duration_secs: meta.planned_duration_secs,
        interrupted: meta.interrupted,
        incomplete,
        run_id: meta.run_id,
        shard: meta.shard.map(|s| s.to_string()),
        shard_index: meta.shard.map(|s| s.index),
        shard_count: meta.shard.map(|s| s.count).or(meta.shard_count),
        run_key: meta.run_key,
        started_at: meta.started_at,
        start_sync: meta.start_sync,
        start_skew: meta.start_skew,
        target: meta.target,
        server: meta.server,
        workloads: measured.workloads,
        ops: measured.ops,
        counters: measured.counters,
        checks: vec![],
        faults,
        events,
        heal_failures,
        interval_secs: meta.interval_secs,
        series: measured.series,
        migration,
        slot_errors: measured.slot_errors,
        generator_cpu_secs: meta.generator_cpu_secs,
    };
    let mut checks = prior_checks;
    checks.extend(check::evaluate_with(&thresholds, &s, &|t, p| {
        phases.figures(t, p, &s)
    }));
    let implicit = implicit_checks(&checks, &s.counters);
    checks.extend(implicit);
    checks.extend(migration_checks(s.migration.as_ref()));
    checks.extend(recovery_checks(&s.faults, s.duration_secs));
    s.events
        .extend(unjudged_recoveries(&s.faults, s.duration_secs));
    s.checks = checks;
    s.incomplete = incomplete_reasons(&s);
    s.verdict = verdict(&s);
    s
}

/// Every fault must be left behind: after its heal, each workload back to normal (the impact
/// window's own definition, `summary::impact`) before the load ended and within the fault's
/// `recover_within`. One check per occurrence and workload; a repeated fault's occurrences are
/// numbered (`failover#2`).
pub fn recovery_checks(faults: &[FaultRecord], load_end: f64) -> Vec<CheckResult> {
    let mut out = vec![];
    let mut seen: std::collections::HashMap<usize, usize> = Default::default();
    let repeats = |i: usize| faults.iter().filter(|f| f.index == i).count() > 1;
    for f in faults {
        let Some(imp) = &f.impact else { continue };
        let n = seen.entry(f.index).or_insert(0);
        *n += 1;
        let name = if repeats(f.index) {
            format!("{}#{n}", f.name)
        } else {
            f.name.clone()
        };
        let heal = f.healed_at_secs.or(f.injected_at_secs).unwrap_or(0.0);
        // Healed as the load ended: nothing left to see recovery in (validate warned).
        if load_end - heal < impact::SETTLE_MIN.as_secs_f64() {
            continue;
        }
        let bound = f
            .recover_within_secs
            .unwrap_or(crate::plan::DEFAULT_RECOVER_WITHIN.as_secs_f64());
        for w in &imp.workloads {
            let bound = w.recover_within_secs.unwrap_or(bound);
            let value = w.back_to_normal_secs.map(|b| round3((b - heal).max(0.0)));
            out.push(CheckResult {
                metric: format!("{}.recovery{{after:{name}}}", w.workload),
                condition: format!("<= {}", crate::units::fmt_secs(bound)),
                value,
                passed: value.is_some_and(|v| v <= bound + 1e-9),
                shown: match value {
                    Some(v) => match &w.not_served {
                        Some(n) => format!("back to normal {v:.1}s after the heal ({n})"),
                        None => format!("back to normal {v:.1}s after the heal"),
                    },
                    None => format!(
                        "not back to normal before the load ended ({:.1}s after the heal): {}",
                        (load_end - heal).max(0.0),
                        last_seen(w)
                    ),
                },
                origin: CheckOrigin::Recovery,
            });
        }
    }
    out
}

/// Faults that healed as the load ended, so that recovery after them could not be seen: said in
/// the report, since they have no recovery check.
fn unjudged_recoveries(faults: &[FaultRecord], load_end: f64) -> Vec<Event> {
    faults
        .iter()
        .filter(|f| f.impact.is_some())
        .filter_map(|f| {
            let heal = f.healed_at_secs.or(f.injected_at_secs)?;
            (load_end - heal < impact::SETTLE_MIN.as_secs_f64()).then(|| Event {
                at_secs: heal,
                kind: EventKind::Note,
                detail: format!(
                    "recovery after #{} {} not checked: it healed {:.2}s before the load ended \
                     (leave recover_within after the last heal)",
                    f.index,
                    f.name,
                    (load_end - heal).max(0.0)
                ),
            })
        })
        .collect()
}

/// What a workload that never came back last showed.
fn last_seen(w: &WorkloadImpact) -> String {
    if let Some(n) = &w.not_served {
        return n.clone();
    }
    let kinds = w
        .errors_by_kind
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect::<Vec<_>>()
        .join(", ");
    match (w.first_failure_secs, w.first_success_after_secs) {
        (Some(f), None) => format!("errors from {f:.2}s ({kinds}), no success after"),
        (Some(f), Some(r)) if w.errors > 0 => {
            format!("errors from {f:.2}s, served again from {r:.2}s but still failing ({kinds})")
        }
        _ if w.p99_during_us > 0 && w.p99_before_us > 0 => format!(
            "p99 {} against {} before the fault",
            crate::units::fmt_us(w.p99_during_us as f64),
            crate::units::fmt_us(w.p99_before_us as f64)
        ),
        _ => "nothing completed since".to_string(),
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Why the run cannot vouch for anything beyond a failed heal (listed in `heal_failures`): the
/// gatherer's reasons, faults that could not be injected, then an interruption.
fn incomplete_reasons(s: &RunSummary) -> Vec<String> {
    let mut out = s.incomplete.clone();
    for f in &s.faults {
        if let Some(e) = &f.inject_error {
            out.push(format!(
                "fault #{} {} could not be injected ({e}): the scenario did not run as written",
                f.index, f.name
            ));
        }
    }
    if s.interrupted {
        out.push(format!(
            "interrupted after {:.1}s of {:.1}s (Ctrl-C or SIGTERM)",
            s.duration_secs, s.planned_duration_secs
        ));
    }
    out
}

/// What a run's collector measured: per operation, per workload, every declared counter, the
/// per-interval series and the failed operations per slot.
pub fn measured(plan: &Plan, c: &Collector, ran: Duration, interval: Duration) -> Measured {
    let secs = ran.as_secs_f64().max(1e-3);
    let mut m = Measured::default();
    for (wi, (w, wm)) in plan.workloads.iter().zip(c.workloads.iter()).enumerate() {
        let (werr, wcount) = op_summaries(&mut m.ops, &w.id, &wm.op_names(), &c.totals[wi], secs);
        for (d, v) in wm.counters.snapshot() {
            m.counters.push(CounterValue {
                workload: w.id.clone(),
                name: d.name.to_string(),
                value: v,
                kind: d.kind,
                covers: d.covers.map(str::to_string),
            });
        }
        for (n, kind, v) in wm.custom_snapshot() {
            m.counters.push(CounterValue {
                workload: w.id.clone(),
                name: n,
                value: v as f64,
                kind,
                covers: None,
            });
        }
        m.workloads.push(WorkloadSummary {
            id: w.id.clone(),
            kind: w.kind.type_of(),
            clients: w.clients,
            model: model_text(&w.load),
            late_starts: wm.late_starts.load(std::sync::atomic::Ordering::Relaxed),
            dropped_starts: wm.dropped_starts.load(std::sync::atomic::Ordering::Relaxed),
            errors: werr,
            error_rate: werr as f64 / wcount.max(1) as f64,
            send_lag_us: wm.send_lag(),
            generator_bound: wm
                .send_lag()
                .and_then(|l| super::generator::bound(&l, w.clients)),
        });
    }
    m.series = series(c, interval);
    m.slot_errors = slot_errors(c);
    m
}

/// One workload's operations, appended to `ops`; returns its (errors, count).
fn op_summaries(
    ops: &mut Vec<OpSummary>,
    workload: &str,
    names: &[String],
    totals: &[crate::metrics::OpAcc],
    secs: f64,
) -> (u64, u64) {
    let (mut werr, mut wcount) = (0, 0);
    for (oi, name) in names.iter().enumerate() {
        let Some(acc) = totals.get(oi) else {
            ops.push(empty_op(workload, name));
            continue;
        };
        let errors = acc.error_count();
        let count = acc.ok() + errors;
        werr += errors;
        wcount += count;
        ops.push(OpSummary {
            workload: workload.to_string(),
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
    (werr, wcount)
}

fn model_text(load: &LoadModel) -> String {
    match load {
        LoadModel::Closed => "closed loop".into(),
        LoadModel::Open(s) if s.stages.is_empty() => format!("open model, {} ops/s", s.start),
        LoadModel::Open(s) => format!(
            "open model, {} stages, peak {} ops/s",
            s.stages.len(),
            s.peak()
        ),
    }
}

fn series(c: &Collector, interval: Duration) -> Vec<SeriesPoint> {
    let mut out = vec![];
    for iv in &c.coarse(interval) {
        for o in &iv.ops {
            let m = &c.workloads[o.workload];
            out.push(SeriesPoint {
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
    out
}

fn slot_errors(c: &Collector) -> Vec<SlotErrors> {
    let mut out = vec![];
    for iv in &c.intervals {
        for o in iv.ops.iter().filter(|o| o.errors.iter().any(|e| *e > 0)) {
            let m = &c.workloads[o.workload];
            out.push(SlotErrors {
                workload: m.id.clone(),
                op: m.op_names().get(o.op).cloned().unwrap_or_default(),
                from_secs: micros(iv.start),
                to_secs: micros(iv.end),
                errors: o.errors.iter().sum(),
            });
        }
    }
    out
}

/// A cutover rehearsal's copy must be whole: every difference the verify found fails the run,
/// and a verify that could not run is inconclusive. The way back's compare is judged alike.
pub fn migration_checks(m: Option<&MigrationReport>) -> Vec<CheckResult> {
    let Some(m) = m else {
        return vec![];
    };
    let mut out = vec![];
    if let Some(v) = &m.verify {
        out.push(verify_check("migration.verify", v));
    }
    if let Some(b) = &m.switch_back {
        out.push(match &b.verify {
            Some(v) => verify_check("migration.switch_back", v),
            None => CheckResult {
                metric: "migration.switch_back".into(),
                condition: "ran".into(),
                value: None,
                passed: false,
                shown: "the way back's compare did not run".into(),
                origin: CheckOrigin::Coverage,
            },
        });
    }
    out
}

/// `<name>.differences == 0`, or `<name>` inconclusive when the compare could not run.
fn verify_check(name: &str, v: &MigrationVerify) -> CheckResult {
    match &v.error {
        None => CheckResult {
            metric: format!("{name}.differences"),
            condition: "== 0".into(),
            value: Some(v.differences as f64),
            passed: v.differences == 0,
            shown: format!("{} of {} keys", v.differences, v.keys_checked),
            origin: CheckOrigin::Safety,
        },
        Some(e) => CheckResult {
            metric: name.into(),
            condition: "ran".into(),
            value: None,
            passed: false,
            shown: format!("could not verify: {e}"),
            origin: CheckOrigin::Coverage,
        },
    }
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

/// Incomplete when the run cannot vouch for anything (a heal failed, or an `incomplete` reason);
/// else fail when a check failed.
pub fn verdict(s: &RunSummary) -> Verdict {
    if !s.incomplete.is_empty() || !s.heal_failures.is_empty() {
        Verdict::Incomplete
    } else if s.checks.iter().any(|c| !c.passed) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::{LagStats, SwitchBackReport};

    fn compare(differences: u64, error: Option<&str>) -> MigrationVerify {
        MigrationVerify {
            keys_checked: 100,
            differences,
            by_kind: Default::default(),
            first: vec![],
            error: error.map(str::to_string),
        }
    }

    fn report(back: Option<Option<MigrationVerify>>) -> MigrationReport {
        MigrationReport {
            from_to: String::new(),
            mode: "replicaof".into(),
            seed_keys: 0,
            switch: None,
            lag: LagStats::default(),
            lag_series: vec![],
            noscript_after_switch: 0,
            verify: Some(compare(0, None)),
            copy_cost: None,
            switch_back: back.map(|verify| SwitchBackReport {
                at_secs: 9.0,
                paused_ms: 50.0,
                sync_ms: 20.0,
                verify,
            }),
        }
    }

    fn judged(m: &MigrationReport, metric: &str) -> Option<bool> {
        migration_checks(Some(m))
            .into_iter()
            .find(|c| c.metric == metric)
            .map(|c| c.passed)
    }

    #[test]
    fn the_way_back_is_judged_like_the_copy() {
        // No way back rehearsed: no check of it.
        assert_eq!(
            judged(&report(None), "migration.switch_back.differences"),
            None
        );
        let equal = report(Some(Some(compare(0, None))));
        assert_eq!(
            judged(&equal, "migration.switch_back.differences"),
            Some(true)
        );
        assert_eq!(judged(&equal, "migration.verify.differences"), Some(true));
        let differ = report(Some(Some(compare(2, None))));
        assert_eq!(
            judged(&differ, "migration.switch_back.differences"),
            Some(false)
        );
        // A compare that could not run, or never ran, is inconclusive: it fails.
        let broke = report(Some(Some(compare(0, Some("connection reset")))));
        assert_eq!(judged(&broke, "migration.switch_back"), Some(false));
        assert_eq!(
            judged(&report(Some(None)), "migration.switch_back"),
            Some(false)
        );
    }

    /// `(workload, back after the heal, its own recover_within, what held it back)`.
    type Back<'a> = (&'a str, Option<f64>, Option<f64>, Option<&'a str>);

    /// One failover healed at 5 s, the load ending at 40 s; each workload back `back` seconds
    /// after the heal, with its own `recover_within` where it sets one.
    fn recovered(ws: &[Back<'_>]) -> Vec<CheckResult> {
        let w = |(id, back, own, not_served): &Back<'_>| crate::summary::WorkloadImpact {
            workload: id.to_string(),
            back_to_normal_secs: back.map(|b| 5.0 + b),
            first_failure_secs: None,
            last_success_before_secs: None,
            first_success_after_secs: None,
            unavailable_ms: None,
            errors: 0,
            errors_by_kind: Default::default(),
            not_served: not_served.map(str::to_string),
            recover_within_secs: *own,
            p99_before_us: 0,
            p99_during_us: 0,
        };
        let impact = crate::summary::Impact {
            until_secs: 40.0,
            window_ms: 36000.0,
            recovered: false,
            workloads: ws.iter().map(w).collect(),
            errors_by_kind: Default::default(),
            safety: Default::default(),
        };
        let f = FaultRecord {
            recover_within_secs: Some(10.0),
            ..FaultRecord::sample("failover", "failover", (4.0, 5.0), Some(impact))
        };
        recovery_checks(&[f], 40.0)
    }

    #[test]
    fn a_workload_s_own_recover_within_judges_it_and_what_held_it_back_is_named() {
        let orphan = "orphaned lock name coord:lock:3 from 5.10s to 17.00s";
        let never = "orphaned lock name coord:lock:3 from 5.10s, never served again";
        let got = recovered(&[
            ("tasks", Some(12.0), None, None),
            ("coord", Some(12.0), Some(15.0), Some(orphan)),
            ("locks", Some(16.0), Some(15.0), Some(orphan)),
            ("names", None, Some(15.0), Some(never)),
        ]);
        let by = |id: &str| {
            got.iter()
                .find(|c| c.metric == format!("{id}.recovery{{after:failover}}"))
                .unwrap()
        };
        // The fault's bound (10 s) for a workload without its own; the workload's own otherwise.
        assert!(!by("tasks").passed);
        assert_eq!(by("tasks").condition, "<= 10s");
        assert!(by("coord").passed, "{:?}", by("coord"));
        assert_eq!(by("coord").condition, "<= 15s");
        assert!(by("coord").shown.contains(orphan), "{}", by("coord").shown);
        assert!(!by("locks").passed);
        // Never granted again: not back, and the report says what held it.
        assert!(!by("names").passed);
        assert!(by("names").shown.contains(never), "{}", by("names").shown);
    }
}
