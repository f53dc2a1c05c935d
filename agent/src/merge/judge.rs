//! Judging a merged run: every input's checks again (whole-run metrics on the merged figures,
//! phase metrics on the merged slots of the phase, see `merge::phase`), plus `--threshold`s,
//! read by the one threshold parser against what the merged summary contains; and a sharded
//! run's completeness: every shard there, none interrupted.

use super::{Input, MergeError};
use crate::plan::{Phase, Threshold};
use crate::scenario::threshold::{self, Catalog, CatalogWorkload};
use crate::summary::check::PhaseFigures;
use crate::summary::{CheckOrigin, CheckResult, RunSummary};

/// What the merged summary's metrics are (for reading thresholds against it); `faults` are the
/// fault names by index, for phase metrics.
pub fn catalog_with(s: &RunSummary, faults: Vec<String>) -> Catalog {
    Catalog {
        faults,
        ..catalog(s)
    }
}

/// What the merged summary's metrics are (for reading thresholds against it).
pub fn catalog(s: &RunSummary) -> Catalog {
    Catalog {
        workloads: s
            .workloads
            .iter()
            .map(|w| CatalogWorkload {
                id: w.id.clone(),
                ops: s
                    .ops
                    .iter()
                    .filter(|o| o.workload == w.id)
                    .map(|o| o.op.clone())
                    .collect(),
                open_ops: false,
                counters: s
                    .counters
                    .iter()
                    .filter(|c| c.workload == w.id)
                    .map(|c| (c.name.clone(), c.kind))
                    .collect(),
            })
            .collect(),
        faults: vec![],
    }
}

/// The inputs' checks (once each), then the extra ones; `phase` gives a phase's merged figures.
pub fn checks(
    inputs: &[Input],
    thresholds: &[String],
    summary: &RunSummary,
    cat: &Catalog,
    phase: &dyn Fn(&Threshold, &Phase) -> Option<PhaseFigures>,
) -> Result<Vec<CheckResult>, MergeError> {
    let mut wanted: Vec<(String, String)> = vec![];
    for i in inputs {
        for c in i
            .summary
            .checks
            .iter()
            .filter(|c| c.origin == CheckOrigin::Threshold)
        {
            if !wanted.iter().any(|w| w.0 == c.metric && w.1 == c.condition) {
                wanted.push((c.metric.clone(), c.condition.clone()));
            }
        }
    }
    let mut checks = vec![];
    for (metric, condition) in wanted {
        checks.push(match threshold::parse(&metric, &condition, cat) {
            Ok(t) => crate::summary::check::evaluate_with(&[t], summary, phase).remove(0),
            Err(e) => CheckResult {
                metric,
                condition,
                value: None,
                passed: false,
                shown: format!("cannot re-evaluate: {}", e.message),
                origin: CheckOrigin::Threshold,
            },
        });
    }
    for text in thresholds {
        let t = threshold::parse_flag(text, cat).map_err(MergeError::Usage)?;
        checks.extend(crate::summary::check::evaluate_with(&[t], summary, phase));
    }
    // The default rules, on the merged counters.
    let implicit = crate::summary::build::implicit_checks(&checks, &summary.counters);
    checks.extend(implicit);
    Ok(checks)
}

/// A sharded run is judged whole: a shard missing (its agent failed, or its host was lost) or
/// interrupted fails the merged verdict, by name.
pub fn completeness(
    inputs: &[Input],
    count: u32,
    missing: &[u32],
    absent: &[String],
) -> Vec<CheckResult> {
    let mut out = vec![];
    for i in 0..count {
        let name = format!("shard {i}/{count}");
        if missing.contains(&i) {
            out.push(CheckResult {
                metric: name,
                condition: "present".into(),
                value: None,
                passed: false,
                shown: format!(
                    "missing: no output of this shard among the inputs (its agent failed, or \
                     its host was lost){}",
                    if absent.is_empty() {
                        String::new()
                    } else {
                        format!("; not there: {}", absent.join("; "))
                    }
                ),
                origin: CheckOrigin::Shard,
            });
            continue;
        }
        let Some(input) = inputs
            .iter()
            .find(|x| x.summary.shard_of() == Some((i, count)))
        else {
            continue;
        };
        let s = &input.summary;
        out.push(CheckResult {
            metric: name,
            condition: "complete".into(),
            value: Some(s.duration_secs),
            passed: !s.interrupted,
            shown: if s.interrupted {
                format!(
                    "interrupted after {:.1}s of {:.1}s ({})",
                    s.duration_secs, s.planned_duration_secs, input.label
                )
            } else {
                format!("ran {:.1}s ({})", s.duration_secs, input.label)
            },
            origin: CheckOrigin::Shard,
        });
    }
    out
}

/// Run the history checkers over every agent's histories of each safety workload together and
/// put their findings in place of the summed counters (an overlap between two agents' holds is
/// a violation no single agent saw). Returns the merged histories (for `history/`).
pub fn recheck(inputs: &[Input], summary: &mut RunSummary) -> Vec<(String, Vec<u8>)> {
    use std::collections::BTreeMap;
    let mut by_workload: BTreeMap<String, Vec<crate::history::Entry>> = BTreeMap::new();
    for i in inputs {
        for (id, entries) in &i.histories {
            by_workload
                .entry(id.clone())
                .or_default()
                .extend(entries.iter().cloned());
        }
    }
    let mut out = vec![];
    for (id, entries) in &by_workload {
        let kind = summary
            .workloads
            .iter()
            .find(|w| &w.id == id)
            .map(|w| w.kind.clone())
            .unwrap_or_default();
        let clock = crate::check::Clock::of(entries);
        let mut set = |name: &str, v: usize| {
            if let Some(c) = summary
                .counters
                .iter_mut()
                .find(|c| &c.workload == id && c.name == name)
            {
                c.value = v as f64;
            }
        };
        match kind.as_str() {
            "lock" => {
                let end = entries.iter().map(|e| clock.at(e)).max().unwrap_or(0);
                let f = crate::check::lock::check(entries, clock, end);
                set("violations", f.violations.len());
                set("lost_while_held", f.lost.len());
                set("fencing_violations", f.fence_regressions.len());
                set("checked", f.holds as usize);
                let agents: std::collections::BTreeSet<&str> = entries
                    .iter()
                    .map(|e| e.process.split('/').next().unwrap_or(""))
                    .collect();
                summary.events.push(crate::summary::Event {
                    at_secs: 0.0,
                    kind: crate::summary::EventKind::Note,
                    detail: format!(
                        "{id}: the histories of {} agents checked together ({}): {} holds, {} overlapping{}",
                        agents.len(),
                        match clock {
                            crate::check::Clock::Mono => "one host, monotonic clock".to_string(),
                            crate::check::Clock::Wall { tolerance_ns } => format!(
                                "several hosts, wall clocks trusted to {} ms",
                                tolerance_ns / 1_000_000
                            ),
                        },
                        f.holds,
                        f.violations.len(),
                        if f.uncertain > 0 {
                            format!(", {} too close to tell", f.uncertain)
                        } else {
                            String::new()
                        }
                    ),
                });
            }
            "rate_limit" => {
                if let Some(cfg) = crate::check::limiter::config(entries) {
                    let f = crate::check::limiter::check(entries, &cfg, clock);
                    set("overshoot", f.overshoot.len());
                    set("overshoot_checked", f.checked as usize);
                }
            }
            _ => {}
        }
        out.push((id.clone(), crate::history::to_jsonl(entries)));
    }
    out
}
