//! What judging a merged run needs beyond a single run's evidence: every input's thresholds read
//! again (with `--threshold`s) by the one threshold parser against what the merged run contains,
//! each oracle run over every agent's histories together, and a sharded run's completeness
//! (every shard there, none interrupted). The judging itself is `summary::build::judge`.

use super::error::MergeError;
use super::input::Input;
use crate::plan::Threshold;
use crate::scenario::threshold::{self, Catalog, CatalogWorkload};
use crate::summary::build::Measured;
use crate::summary::{CheckOrigin, CheckResult, CounterValue, Event, EventKind, WorkloadSummary};

/// What the merged run's metrics are (for reading thresholds against it); `faults` are the
/// fault names by index, for phase metrics.
pub fn catalog_with(m: &Measured, faults: Vec<String>) -> Catalog {
    Catalog {
        faults,
        ..catalog(m)
    }
}

/// What the merged run's metrics are (for reading thresholds against it).
pub fn catalog(m: &Measured) -> Catalog {
    Catalog {
        workloads: m
            .workloads
            .iter()
            .map(|w| CatalogWorkload {
                id: w.id.clone(),
                ops: m
                    .ops
                    .iter()
                    .filter(|o| o.workload == w.id)
                    .map(|o| o.op.clone())
                    .collect(),
                open_ops: false,
                counters: m
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

/// The thresholds to judge the merged run by: the inputs' own (once each) and the extra ones
/// (`--threshold`, a usage error when unreadable), read against the merged run. An input's
/// threshold that cannot be read against it fails as a check of its own.
pub fn thresholds(
    inputs: &[Input],
    extra: &[String],
    cat: &Catalog,
) -> Result<(Vec<Threshold>, Vec<CheckResult>), MergeError> {
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
    let mut out = vec![];
    let mut unreadable = vec![];
    for (metric, condition) in wanted {
        match threshold::parse(&metric, &condition, cat) {
            Ok(t) => out.push(t),
            Err(e) => unreadable.push(CheckResult {
                metric,
                condition,
                value: None,
                passed: false,
                shown: format!("cannot re-evaluate: {}", e.message),
                origin: CheckOrigin::Threshold,
            }),
        }
    }
    for text in extra {
        out.push(threshold::parse_flag(text, cat).map_err(MergeError::Usage)?);
    }
    Ok((out, unreadable))
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

/// Run each workload's oracle over every agent's history of it together (`check::judge`, the
/// same checker and counter mapping a single run uses) and put its findings in place of the summed
/// counters: an overlap between two agents' holds is a violation no single agent saw. Returns the
/// merged histories (for `history/`).
pub fn recheck(
    inputs: &[Input],
    workloads: &[WorkloadSummary],
    counters: &mut [CounterValue],
) -> (Vec<(String, Vec<u8>)>, Vec<Event>) {
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
    let mut notes = vec![];
    for (id, entries) in &by_workload {
        let clock = crate::check::Clock::of(entries);
        let ty = workloads.iter().find(|w| &w.id == id).map(|w| w.kind);
        let judged = ty.and_then(|t| Some((t, crate::check::judge(t, entries, clock)?)));
        if let Some((ty, f)) = judged {
            for (i, v) in f.values() {
                let name = ty.counters()[i].name;
                if let Some(c) = counters
                    .iter_mut()
                    .find(|c| &c.workload == id && c.name == name)
                {
                    c.value = v as f64;
                }
            }
            notes.push(Event {
                at_secs: 0.0,
                kind: EventKind::Note,
                detail: together_note(id, entries, clock, &f),
            });
        }
        out.push((id.clone(), crate::history::to_jsonl(entries)));
    }
    (out, notes)
}

/// What checking several agents' histories together found, for the report.
fn together_note(
    id: &str,
    entries: &[crate::history::Entry],
    clock: crate::check::Clock,
    f: &crate::check::Findings,
) -> String {
    let agents: std::collections::BTreeSet<&str> = entries
        .iter()
        .map(|e| e.process.split('/').next().unwrap_or(""))
        .collect();
    let checked: u64 = f.levels.iter().map(|l| l.1).sum();
    let found: usize = f.events.iter().map(|e| e.1.len()).sum();
    format!(
        "{id}: the histories of {} agents checked together ({}): {checked} checked, {found} found{}",
        agents.len(),
        match clock {
            crate::check::Clock::Mono => "one host, monotonic clock".to_string(),
            crate::check::Clock::Wall { tolerance_ns } => format!(
                "several hosts, wall clocks trusted to {} ms",
                tolerance_ns / 1_000_000
            ),
        },
        if f.uncertain > 0 {
            format!(", {} too close to tell", f.uncertain)
        } else {
            String::new()
        }
    )
}
