//! Judging a merged run: every input's checks again (whole-run metrics re-evaluated on the
//! merged figures), plus `--threshold`s, read by the one threshold parser against what the
//! merged summary contains.

use super::{Input, MergeError};
use crate::scenario::threshold::{self, Catalog, CatalogWorkload};
use crate::summary::{CheckOrigin, CheckResult, RunSummary};

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

/// The inputs' checks (once each), then the extra ones.
pub fn checks(
    inputs: &[Input],
    thresholds: &[String],
    summary: &RunSummary,
) -> Result<Vec<CheckResult>, MergeError> {
    let cat = catalog(summary);
    let mut wanted: Vec<(String, String, Vec<bool>)> = vec![];
    for i in inputs {
        for c in i
            .summary
            .checks
            .iter()
            .filter(|c| c.origin == CheckOrigin::Threshold)
        {
            match wanted
                .iter_mut()
                .find(|w| w.0 == c.metric && w.1 == c.condition)
            {
                Some(w) => w.2.push(c.passed),
                None => wanted.push((c.metric.clone(), c.condition.clone(), vec![c.passed])),
            }
        }
    }
    let mut checks = vec![];
    for (metric, condition, passes) in wanted {
        if metric.contains('{') {
            let k = passes.iter().filter(|p| **p).count();
            checks.push(CheckResult {
                metric,
                condition,
                value: None,
                passed: k == passes.len(),
                shown: format!(
                    "not re-evaluated by merge ({k} of {} runs passed)",
                    passes.len()
                ),
                origin: CheckOrigin::Threshold,
            });
            continue;
        }
        checks.push(match threshold::parse(&metric, &condition, &cat) {
            Ok(t) => crate::summary::check::evaluate(&[t], summary, None).remove(0),
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
        let (metric, _) = threshold::split(text).map_err(MergeError::Usage)?;
        if metric.contains('{') {
            return Err(MergeError::Usage(format!(
                "--threshold {text:?}: phase metrics ({{…}}) need each run's fault timeline and \
                 are not re-evaluated by merge; use a whole-run metric"
            )));
        }
        let t = threshold::parse_flag(text, &cat).map_err(MergeError::Usage)?;
        checks.extend(crate::summary::check::evaluate(&[t], summary, None));
    }
    // The default rules, on the merged counters.
    let implicit = crate::summary::build::implicit_checks(&checks, &summary.counters);
    checks.extend(implicit);
    Ok(checks)
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
