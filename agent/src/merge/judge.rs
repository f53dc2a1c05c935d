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
