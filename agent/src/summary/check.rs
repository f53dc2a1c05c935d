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

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::fmt::Write;

    use super::*;
    use crate::metrics::new_hist;
    use crate::plan::CmpOp;
    use crate::summary::{CounterValue, OpSummary, ServerInfo, Verdict};

    /// `<workload>.<op>.<stat>` or `<workload>.<counter>`, with an optional `{phase}` (`before`,
    /// `after`, `during:<i>`, `after:<i>`), compared with `cmp` to `value`.
    fn thr(metric: &str, cmp: CmpOp, value: f64) -> Threshold {
        let (path, phase) = match metric.split_once('{') {
            Some((p, rest)) => {
                let ph = match rest.trim_end_matches('}') {
                    "before" => Phase::Before,
                    "after" => Phase::After,
                    other => match other.split_once(':') {
                        Some(("during", i)) => Phase::During(i.parse().expect("index")),
                        Some(("after", i)) => Phase::AfterFault(i.parse().expect("index")),
                        _ => panic!("phase {other:?}"),
                    },
                };
                (p, Some(ph))
            }
            None => (metric, None),
        };
        let parts: Vec<&str> = path.split('.').collect();
        let mp = match parts[..] {
            [_, op, stat] => MetricPath::Op {
                op: op.into(),
                stat: Stat::parse(stat).expect("stat"),
            },
            [_, counter] => MetricPath::Counter(counter.into()),
            _ => panic!("metric {metric:?}"),
        };
        Threshold {
            metric: metric.into(),
            workload: parts[0].into(),
            path: mp,
            phase,
            op: cmp,
            value,
            condition: format!("{} {value}", cmp.symbol()),
        }
    }

    fn op(workload: &str, name: &str, ok: u64, errors: u64, lat: LatencyStats) -> OpSummary {
        let count = ok + errors;
        OpSummary {
            workload: workload.into(),
            op: name.into(),
            count,
            ok,
            errors,
            error_rate: errors as f64 / count.max(1) as f64,
            rate_per_sec: count as f64 / 10.0,
            latency_us: lat,
            service_us: lat,
            errors_by_kind: Default::default(),
        }
    }

    /// A 10 s run: `cache.get` 990 ok + 10 errors, `cache.set` 100 ok, `cache.del` 5 errors and
    /// nothing served; counters `cache.hits` = 42.25 and `jobs.lost` = 0.
    fn summary() -> RunSummary {
        let lat = LatencyStats {
            p50: 400,
            p90: 900,
            p99: 2_000,
            p999: 9_000,
            max: 50_000,
            mean: 512.4,
            min: 90,
        };
        let counter = |w: &str, n: &str, v: f64| CounterValue {
            workload: w.into(),
            name: n.into(),
            value: v,
            kind: Default::default(),
            covers: None,
        };
        RunSummary {
            incomplete: vec![],
            scenario: "t".into(),
            seed: 1,
            verdict: Verdict::Pass,
            duration_secs: 10.0,
            planned_duration_secs: 10.0,
            interrupted: false,
            run_id: "r".into(),
            shard: None,
            shard_index: None,
            shard_count: None,
            run_key: None,
            started_at: "2025-01-01T00:00:00Z".into(),
            start_sync: None,
            start_skew: None,
            target: "embedded".into(),
            server: ServerInfo::default(),
            workloads: vec![],
            ops: vec![
                op("cache", "get", 990, 10, lat),
                op("cache", "set", 100, 0, lat),
                op("cache", "del", 0, 5, LatencyStats::default()),
            ],
            counters: vec![
                counter("cache", "hits", 42.25),
                counter("jobs", "lost", 0.0),
            ],
            checks: vec![],
            faults: vec![],
            events: vec![],
            heal_failures: vec![],
            interval_secs: 1.0,
            series: vec![],
            migration: None,
            slot_errors: vec![],
            generator_cpu_secs: None,
        }
    }

    fn render(checks: &[CheckResult]) -> String {
        let mut s = String::new();
        for c in checks {
            assert_eq!(c.origin, crate::summary::CheckOrigin::Threshold);
            let _ = writeln!(
                s,
                "{} {} -> {} {}",
                c.metric,
                c.condition,
                c.shown,
                if c.passed { "pass" } else { "FAIL" }
            );
        }
        s
    }

    /// Whole-run thresholds only: a phase threshold here has no figures.
    fn check(thresholds: &[Threshold], expect: &str) {
        let got = render(&evaluate_with(thresholds, &summary(), &|_, _| None));
        let want: Vec<&str> = expect.trim().lines().map(str::trim).collect();
        let have: Vec<&str> = got.trim().lines().map(str::trim).collect();
        assert_eq!(have, want, "\n{got}");
    }

    use CmpOp::{Eq, Ge, Gt, Le, Lt};

    #[test]
    fn every_op_stat_of_the_whole_run() {
        check(
            &[
                thr("cache.get.count", Eq, 1000.0),
                thr("cache.get.rate", Ge, 100.0),
                thr("cache.get.p50", Lt, 500.0),
                thr("cache.get.p90", Lt, 500.0),
                thr("cache.get.p99", Le, 2000.0),
                thr("cache.get.p999", Lt, 5000.0),
                thr("cache.get.max", Le, 50_000.0),
                thr("cache.get.mean", Lt, 500.0),
                thr("cache.get.errors", Eq, 10.0),
                thr("cache.get.error_rate", Lt, 0.01),
                thr("cache.set.errors", Eq, 0.0),
                thr("cache.set.error_rate", Le, 0.0),
            ],
            "
            cache.get.count == 1000 -> 1000 pass
            cache.get.rate >= 100 -> 100.0/s pass
            cache.get.p50 < 500 -> 400us pass
            cache.get.p90 < 500 -> 900us FAIL
            cache.get.p99 <= 2000 -> 2.00ms pass
            cache.get.p999 < 5000 -> 9.00ms FAIL
            cache.get.max <= 50000 -> 50.00ms pass
            cache.get.mean < 500 -> 512us FAIL
            cache.get.errors == 10 -> 10 pass
            cache.get.error_rate < 0.01 -> 1.000% FAIL
            cache.set.errors == 0 -> 0 pass
            cache.set.error_rate <= 0 -> 0.000% pass",
        );
    }

    #[test]
    fn an_op_that_served_nothing_has_counts_but_no_latency() {
        check(
            &[
                thr("cache.del.p99", Lt, 5000.0),
                thr("cache.del.mean", Gt, 0.0),
                thr("cache.del.count", Eq, 5.0),
                thr("cache.del.errors", Gt, 0.0),
                thr("cache.del.error_rate", Eq, 1.0),
                thr("cache.del.rate", Lt, 1.0),
            ],
            "
            cache.del.p99 < 5000 -> no data FAIL
            cache.del.mean > 0 -> no data FAIL
            cache.del.count == 5 -> 5 pass
            cache.del.errors > 0 -> 5 pass
            cache.del.error_rate == 1 -> 100.000% pass
            cache.del.rate < 1 -> 0.5/s pass",
        );
    }

    #[test]
    fn workload_errors_and_error_rate_add_up_its_ops() {
        // 15 errors of 1105 operations; `jobs` has no operations, so no errors.
        check(
            &[
                thr("cache.errors", Le, 15.0),
                thr("cache.error_rate", Lt, 0.01),
                thr("jobs.errors", Eq, 0.0),
            ],
            "
            cache.errors <= 15 -> 15 pass
            cache.error_rate < 0.01 -> 1.357% FAIL
            jobs.errors == 0 -> 0 pass",
        );
    }

    #[test]
    fn counters_are_read_by_name_and_shown_as_numbers() {
        check(
            &[
                thr("cache.hits", Gt, 42.0),
                thr("jobs.lost", Eq, 0.0),
                thr("jobs.lost", Gt, 0.0),
            ],
            "
            cache.hits > 42 -> 42.250 pass
            jobs.lost == 0 -> 0 pass
            jobs.lost > 0 -> 0 FAIL",
        );
    }

    #[test]
    fn no_data_fails_whatever_the_comparison() {
        check(
            &[
                thr("cache.misses", Ge, 0.0),
                thr("cache.scan.count", Ge, 0.0),
                thr("nobody.get.p99", Lt, 1e12),
                thr("nobody.lost", Eq, 0.0),
                thr("cache.get.p99{during:0}", Lt, 1e12),
                thr("cache.errors{before}", Ge, 0.0),
            ],
            "
            cache.misses >= 0 -> no data FAIL
            cache.scan.count >= 0 -> no data FAIL
            nobody.get.p99 < 1000000000000 -> no data FAIL
            nobody.lost == 0 -> no data FAIL
            cache.get.p99{during:0} < 1000000000000 -> no data FAIL
            cache.errors{before} >= 0 -> no data FAIL",
        );
    }

    /// A phase's figures: `get` 100 successes at 3 ms and 2 errors, `set` 50 at 40 ms; 2 s long.
    /// (A histogram keeps 3 significant digits: its max of 40 ms reads as the top of that
    /// value's bucket, 40.03 ms.)
    fn figures() -> PhaseFigures {
        let hist = |n: u64, us: u64| {
            let mut h = new_hist();
            h.record_n(us, n).expect("in range");
            h
        };
        PhaseFigures {
            ops: vec![
                PhaseOp {
                    op: "get".into(),
                    latency: hist(100, 3_000),
                    errors: 2,
                },
                PhaseOp {
                    op: "set".into(),
                    latency: hist(50, 40_000),
                    errors: 0,
                },
            ],
            secs: 2.0,
        }
    }

    #[test]
    fn phase_thresholds_read_the_figures_the_closure_gives() {
        let thresholds = [
            thr("cache.get.p99{during:0}", Lt, 5000.0),
            thr("cache.get.count{during:0}", Eq, 102.0),
            thr("cache.get.rate{during:0}", Gt, 50.0),
            thr("cache.get.errors{during:0}", Eq, 2.0),
            thr("cache.get.error_rate{during:0}", Lt, 0.01),
            thr("cache.set.max{after:1}", Lt, 5000.0),
            thr("cache.errors{after}", Eq, 2.0),
            thr("cache.error_rate{after}", Lt, 0.05),
            thr("cache.hits{after}", Gt, 0.0),
            thr("cache.del.count{after}", Ge, 0.0),
            thr("cache.get.p99{before}", Lt, 5000.0),
            thr("cache.get.p99", Lt, 5000.0),
        ];
        let seen = RefCell::new(vec![]);
        let checks = evaluate_with(&thresholds, &summary(), &|t, p| {
            seen.borrow_mut().push(format!("{} {p:?}", t.metric));
            // The phase before has no figures.
            (*p != Phase::Before).then(figures)
        });
        let got = render(&checks);
        let want = "
            cache.get.p99{during:0} < 5000 -> 3.00ms pass
            cache.get.count{during:0} == 102 -> 102 pass
            cache.get.rate{during:0} > 50 -> 51.0/s pass
            cache.get.errors{during:0} == 2 -> 2 pass
            cache.get.error_rate{during:0} < 0.01 -> 1.961% FAIL
            cache.set.max{after:1} < 5000 -> 40.03ms FAIL
            cache.errors{after} == 2 -> 2 pass
            cache.error_rate{after} < 0.05 -> 1.316% pass
            cache.hits{after} > 0 -> no data FAIL
            cache.del.count{after} >= 0 -> no data FAIL
            cache.get.p99{before} < 5000 -> no data FAIL
            cache.get.p99 < 5000 -> 2.00ms pass";
        let w: Vec<&str> = want.trim().lines().map(str::trim).collect();
        let h: Vec<&str> = got.trim().lines().map(str::trim).collect();
        assert_eq!(h, w, "\n{got}");
        // Asked once per phase threshold, with its phase; the whole-run one never.
        assert_eq!(
            seen.into_inner(),
            [
                "cache.get.p99{during:0} During(0)",
                "cache.get.count{during:0} During(0)",
                "cache.get.rate{during:0} During(0)",
                "cache.get.errors{during:0} During(0)",
                "cache.get.error_rate{during:0} During(0)",
                "cache.set.max{after:1} AfterFault(1)",
                "cache.errors{after} After",
                "cache.error_rate{after} After",
                "cache.hits{after} After",
                "cache.del.count{after} After",
                "cache.get.p99{before} Before",
            ]
        );
    }

    #[test]
    fn phase_figures_from_the_collector_are_exact_unions_of_slots() {
        // 3 s of `cache.get`, ten 1 ms operations per 100 ms slot; every one of them fails in
        // 1.0–1.4. One fault injected at 1.0 whose impact ran to 1.5.
        let sk = crate::metrics::Sketch::new(&[("cache", &["get"], &[])]);
        let ms = Duration::from_millis;
        sk.cut(ms(1000));
        sk.cut(ms(1500));
        for k in 0..30u64 {
            for i in 0..10u64 {
                let fail = (10..14).contains(&k);
                let outcome = if fail {
                    Err(crate::valkey::ErrorKind::Timeout)
                } else {
                    Ok(())
                };
                sk.op(0, 0, ms(k * 100 + i * 10), ms(1), outcome);
            }
        }
        let c = sk.finish();
        let mut s = summary();
        s.duration_secs = 3.0;
        let impact = crate::summary::Impact {
            until_secs: 1.5,
            window_ms: 500.0,
            recovered: true,
            workloads: vec![],
            errors_by_kind: Default::default(),
            safety: Default::default(),
        };
        s.faults = vec![crate::summary::FaultRecord::sample(
            "f",
            "failover",
            (1.0, 1.0),
            Some(impact),
        )];
        let thresholds = [
            thr("cache.get.count{before}", Eq, 100.0),
            thr("cache.get.error_rate{before}", Eq, 0.0),
            thr("cache.get.count{during:0}", Eq, 50.0),
            thr("cache.get.errors{during:0}", Eq, 40.0),
            thr("cache.get.rate{during:0}", Eq, 100.0),
            thr("cache.get.p99{during:0}", Le, 1000.0),
            thr("cache.errors{during:0}", Eq, 40.0),
            thr("cache.error_rate{during:0}", Eq, 0.8),
            thr("cache.get.count{after:0}", Eq, 150.0),
            thr("cache.get.rate{after}", Eq, 100.0),
            thr("cache.errors{after}", Eq, 0.0),
            thr("cache.get.count{during:1}", Ge, 0.0),
            thr("cache.get.count{after:1}", Ge, 0.0),
        ];
        let got = render(&evaluate(&thresholds, &s, Some(&c)));
        let want = "
            cache.get.count{before} == 100 -> 100 pass
            cache.get.error_rate{before} == 0 -> 0.000% pass
            cache.get.count{during:0} == 50 -> 50 pass
            cache.get.errors{during:0} == 40 -> 40 pass
            cache.get.rate{during:0} == 100 -> 100.0/s pass
            cache.get.p99{during:0} <= 1000 -> 1.00ms pass
            cache.errors{during:0} == 40 -> 40 pass
            cache.error_rate{during:0} == 0.8 -> 80.000% pass
            cache.get.count{after:0} == 150 -> 150 pass
            cache.get.rate{after} == 100 -> 100.0/s pass
            cache.errors{after} == 0 -> 0 pass
            cache.get.count{during:1} >= 0 -> no data FAIL
            cache.get.count{after:1} >= 0 -> no data FAIL";
        let w: Vec<&str> = want.trim().lines().map(str::trim).collect();
        let h: Vec<&str> = got.trim().lines().map(str::trim).collect();
        assert_eq!(h, w, "\n{got}");
        // Without a collector, a phase threshold has no data.
        let none = evaluate(&thresholds[..1], &s, None);
        assert_eq!(
            render(&none).trim(),
            "cache.get.count{before} == 100 -> no data FAIL"
        );
    }

    #[test]
    fn values_are_kept_unrounded_and_compared_exactly() {
        let checks = evaluate_with(
            &[
                thr("cache.error_rate", Lt, 15.0 / 1105.0),
                thr("cache.error_rate", Le, 15.0 / 1105.0),
                thr("cache.get.rate", Eq, 100.0 + 1e-12),
            ],
            &summary(),
            &|_, _| None,
        );
        let v: Vec<(Option<f64>, bool)> = checks.iter().map(|c| (c.value, c.passed)).collect();
        assert_eq!(
            v,
            [
                (Some(15.0 / 1105.0), false),
                (Some(15.0 / 1105.0), true),
                (Some(100.0), true),
            ]
        );
    }
}
