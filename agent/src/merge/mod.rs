//! `merge`: several agents' outputs (each a directory with `summary.json` and `latency.hlog`) into
//! one judged summary, with exact percentiles: every interval histogram of every agent is added
//! per tag (`<workload>.<op>` corrected latency, `<workload>.<op>.service` service time).
//!
//! How the figures combine (kept simple on purpose):
//! - counts, ok, errors (by kind), clients, late and dropped starts add up; rates are the total
//!   count over the longest duration; duration and planned duration are the longest;
//! - counters combine by their declared kind: totals and safety counters add up, high-water
//!   marks take the largest, low-water marks the smallest, ratios the mean;
//! - the series is summed per interval, aligned on each run's own start, with p50/p99/max from the
//!   merged interval histograms;
//! - faults, events and heal failures are kept per input, labelled with the input's directory;
//! - thresholds: the union of the inputs' checks plus `--threshold`s, re-evaluated: whole-run
//!   metrics on the merged figures, phase metrics (`…{during:failover}`, `{before}`, `{after}`)
//!   on the merged slots of the phase, with every input's windows on the shared time zero
//!   ([`phase`]);
//! - a sharded run (summaries with a `shard`, from `run --shard`) is judged whole: a shard whose
//!   output is missing (its agent failed or lost its host) or that was interrupted fails the
//!   verdict by name (exit 1), with the other shards merged; inputs that are not one run (other
//!   scenarios, other shard counts, a shard twice, shards with non-shards) are a usage error
//!   (exit 2);
//! - the start: the spread of the shards' time zeros and actual starts (`start_skew`).
//!
//! The merged output has its own `latency.hlog`, so merges can be merged again.
//!
//! Reading one agent's output is `input.rs` ([`Input`], [`load`]) and what can go wrong is
//! `error.rs` ([`MergeError`]): leaf files the steps (`combine`, `judge`, `phase`) and this
//! file import, so no step reaches back up here.

mod combine;
mod error;
mod input;
mod judge;
mod phase;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub use error::MergeError;
pub use input::{load, Input};

use crate::summary::build::Meta;
use crate::summary::RunSummary;
use error::bad;

/// A merged run: the summary, the merged interval log and every agent's histories together.
pub struct Merged {
    pub summary: RunSummary,
    pub hlog: Vec<u8>,
    pub histories: Vec<(String, Vec<u8>)>,
}

/// Load every input and merge them. An input that is not there is kept as absent: a shard that
/// went missing, if the others are shards.
pub fn merge_paths(paths: &[PathBuf], thresholds: &[String]) -> Result<Merged, MergeError> {
    let mut inputs = vec![];
    let mut absent = vec![];
    for p in paths {
        match load(p) {
            Ok(i) => inputs.push(i),
            Err(e @ MergeError::Absent { .. }) => absent.push(e),
            Err(e) => return Err(e),
        }
    }
    merge(inputs, absent, thresholds)
}

/// Merge several agents' outputs of one scenario; `absent` are inputs that were not there. The
/// merged evidence goes to the same judge a single run's does (`summary::build::judge`).
pub fn merge(
    mut inputs: Vec<Input>,
    absent: Vec<MergeError>,
    thresholds: &[String],
) -> Result<Merged, MergeError> {
    let sharded = check_inputs(&mut inputs, absent.first())?;
    let absent: Vec<String> = absent.iter().map(ToString::to_string).collect();
    let frame = combine::Frame::of(&inputs);
    let mut ops = combine::ops(&inputs);
    let mut series = combine::series(&inputs, &ops, frame);
    let logs = combine::logs(
        &inputs,
        &ops,
        &mut series,
        frame,
        &inputs[0].summary.scenario,
    )?;
    combine::finish_ops(&mut ops, &logs.totals, frame);
    let (workloads, mut counters) = combine::workloads_and_counters(&inputs, &ops);
    let mut t = combine::timelines(&inputs);
    let meta = meta(&inputs, frame, sharded.as_ref().map(|s| s.0));
    if let Some(k) = &meta.start_skew {
        t.events.insert(1, skew_note(k));
    }
    // Each oracle again, on every agent's histories together.
    let (histories, notes) = judge::recheck(&inputs, &workloads, &mut counters);
    t.events.extend(notes);
    // Thresholds again (phase ones on the merged slots of their phase), after the shards' own
    // completeness.
    let probe = crate::summary::build::Measured {
        workloads: workloads.clone(),
        ops: ops.clone(),
        counters: counters.clone(),
        ..Default::default()
    };
    let cat = judge::catalog_with(&probe, phase::fault_names(&inputs));
    let (wanted, mut prior) = judge::thresholds(&inputs, thresholds, &cat)?;
    let mut incomplete = vec![];
    if let Some((count, missing)) = &sharded {
        if !missing.is_empty() {
            // Part of the load never ran: the merged run cannot vouch for the whole.
            incomplete.push(format!(
                "{}: part of the load never ran",
                crate::plan::shard::missing_text(missing, *count)
            ));
        }
        let mut whole = judge::completeness(&inputs, *count, missing, &absent);
        whole.append(&mut prior);
        prior = whole;
        if !missing.is_empty() {
            eprintln!(
                "merge: {}: the merged verdict fails (the other shards are merged)",
                crate::plan::shard::missing_text(missing, *count)
            );
        }
    }
    let phases = phase::Merged {
        slots: phase::read(&inputs)?,
        timelines: phase::timelines(&inputs, sharded.is_some()),
        inputs: &inputs,
    };
    let summary = crate::summary::build::judge(crate::summary::build::Evidence {
        meta,
        measured: crate::summary::build::Measured {
            workloads,
            ops,
            counters,
            series: series.into_values().collect(),
            slot_errors: inputs
                .iter()
                .flat_map(|i| i.summary.slot_errors.iter().cloned())
                .collect(),
        },
        faults: t.faults,
        events: t.events,
        migration: inputs.iter().find_map(|i| i.summary.migration.clone()),
        thresholds: wanted,
        prior_checks: prior,
        incomplete,
        phases: &phases,
    });
    Ok(Merged {
        summary,
        hlog: logs.hlog,
        histories,
    })
}

/// Who ran: the merged run's identity, duration and target(s).
fn meta(inputs: &[Input], frame: combine::Frame, shard_count: Option<u32>) -> Meta {
    let s0 = &inputs[0].summary;
    let mut targets: Vec<&str> = vec![];
    for i in inputs {
        if !targets.contains(&i.summary.target.as_str()) {
            targets.push(&i.summary.target);
        }
    }
    Meta {
        scenario: s0.scenario.clone(),
        seed: s0.seed,
        run_id: format!(
            "merge:{}",
            inputs
                .iter()
                .map(|i| i.summary.run_id.as_str())
                .collect::<Vec<_>>()
                .join("+")
        ),
        shard: None,
        shard_count,
        run_key: inputs.iter().find_map(|i| i.summary.run_key.clone()),
        started_at: inputs
            .iter()
            .filter_map(|i| i.summary.started())
            .min()
            .map(|t| humantime::format_rfc3339_micros(t).to_string())
            .unwrap_or_else(|| s0.started_at.clone()),
        start_sync: None,
        start_skew: start_skew(inputs),
        target: targets.join(", "),
        server: inputs
            .iter()
            .map(|i| &i.summary.server)
            .find(|s| !s.version.is_empty())
            .cloned()
            .unwrap_or_default(),
        duration_secs: frame.duration,
        planned_duration_secs: inputs
            .iter()
            .map(|i| i.summary.planned_duration_secs)
            .fold(0.0, f64::max),
        interrupted: inputs.iter().any(|i| i.summary.interrupted),
        interval_secs: frame.interval,
        generator_cpu_secs: inputs.iter().map(|i| i.summary.generator_cpu_secs).sum(),
    }
}

fn skew_note(k: &crate::summary::StartSkew) -> crate::summary::Event {
    crate::summary::Event {
        at_secs: 0.0,
        kind: crate::summary::EventKind::Note,
        detail: format!(
            "start skew over {} runs: time zeros {:.3} ms apart, actual starts {:.3} ms apart \
             (± {:.3} ms)",
            k.shards.len(),
            k.started_at_spread_ms,
            k.actual_spread_ms,
            k.uncertainty_ms
        ),
    }
}

/// How far apart the inputs started: their time zeros, and their actual starts (time zero plus
/// how late each agent began, as it recorded).
fn start_skew(inputs: &[Input]) -> Option<crate::summary::StartSkew> {
    if inputs.len() < 2 {
        return None;
    }
    let zero = inputs.iter().filter_map(|i| i.summary.started()).min()?;
    let ms = |i: &Input| {
        i.summary
            .started()
            .and_then(|t| t.duration_since(zero).ok())
            .map(|d| d.as_secs_f64() * 1000.0)
    };
    let spread = |v: &[f64]| {
        v.iter().copied().fold(f64::NEG_INFINITY, f64::max)
            - v.iter().copied().fold(f64::INFINITY, f64::min)
    };
    let round = |x: f64| (x * 1000.0).round() / 1000.0;
    let zeros: Vec<f64> = inputs.iter().filter_map(ms).collect();
    let actual: Vec<f64> = inputs
        .iter()
        .filter_map(|i| {
            let late = i.summary.start_sync.as_ref().map_or(0.0, |s| s.late_ms);
            ms(i).map(|z| z + late)
        })
        .collect();
    Some(crate::summary::StartSkew {
        started_at_spread_ms: round(spread(&zeros)),
        actual_spread_ms: round(spread(&actual)),
        uncertainty_ms: inputs
            .iter()
            .filter_map(|i| i.summary.start_sync.as_ref().map(|s| s.uncertainty_ms))
            .fold(0.0, f64::max),
        shards: inputs
            .iter()
            .map(|i| crate::summary::ShardStart {
                input: i.label.clone(),
                shard: i.summary.shard.clone(),
                started_at: i.summary.started_at.clone(),
                late_ms: i.summary.start_sync.as_ref().map(|s| s.late_ms),
                uncertainty_ms: i.summary.start_sync.as_ref().map(|s| s.uncertainty_ms),
            })
            .collect(),
    })
}

/// One scenario, each run once, a sharded run's shards each at most once; labels made unique.
/// Returns the shard count and the missing shards of a sharded run. An absent input is a missing
/// shard when the others are shards of one run with a shard missing; otherwise it is an error.
fn check_inputs(
    inputs: &mut [Input],
    absent: Option<&MergeError>,
) -> Result<Option<(u32, Vec<u32>)>, MergeError> {
    let Some(first) = inputs.first() else {
        return Err(match absent {
            Some(MergeError::Absent { path, msg }) => MergeError::Usage(format!(
                "{}: {msg} (and no other input to merge)",
                path.display()
            )),
            _ => MergeError::Usage("nothing to merge".into()),
        });
    };
    let scenario = first.summary.scenario.clone();
    let first_path = first.summary_path.clone();
    let mut run_ids: HashMap<&str, &Path> = HashMap::new();
    for i in inputs.iter() {
        if i.summary.scenario != scenario {
            return Err(bad(
                &i.summary_path,
                format!(
                    "scenario {:?} differs from {:?} in {}: merge combines shards of one scenario",
                    i.summary.scenario,
                    scenario,
                    first_path.display()
                ),
            ));
        }
        if let Some(other) = run_ids.insert(&i.summary.run_id, &i.summary_path) {
            return Err(bad(
                &i.summary_path,
                format!(
                    "the same run (run_id {}) as {}: give each agent's output once",
                    i.summary.run_id,
                    other.display()
                ),
            ));
        }
    }
    // A sharded run merges whole: shards 0..n of one n, each once (else exit 2 naming the gap).
    let shards: Vec<(String, Option<String>)> = inputs
        .iter()
        .map(|i| {
            (
                i.summary_path.display().to_string(),
                i.summary.shard.clone(),
            )
        })
        .collect();
    let sharded = crate::plan::shard::check_complete(&shards).map_err(MergeError::Usage)?;
    if let Some(MergeError::Absent { path, msg }) = absent {
        if sharded
            .as_ref()
            .is_none_or(|(_, missing)| missing.is_empty())
        {
            return Err(bad(path, msg.clone()));
        }
    }
    // Labels: directory names, or whole paths when two directories share a name.
    let mut seen = std::collections::HashSet::new();
    if !inputs.iter().all(|i| seen.insert(i.label.clone())) {
        for i in inputs.iter_mut() {
            i.label = i
                .summary_path
                .parent()
                .unwrap_or(Path::new("."))
                .display()
                .to_string();
        }
    }
    Ok(sharded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::counter::CounterKind;

    #[test]
    fn counters_combine_by_kind() {
        assert_eq!(CounterKind::Safety.combine(1.0, 2.0), 3.0);
        assert_eq!(CounterKind::Max.combine(7.0, 3.0), 7.0);
        assert_eq!(CounterKind::Min.combine(7.0, 3.0), 3.0);
    }

    #[test]
    fn thresholds_read_against_the_merged_summary() {
        let s = crate::report::html::tests::sample();
        let cat = judge::catalog(&crate::summary::build::Measured {
            workloads: s.workloads.clone(),
            ops: s.ops.clone(),
            counters: s.counters.clone(),
            ..Default::default()
        });
        let p = |m: &str, c: &str| crate::scenario::threshold::parse(m, c, &cat);
        let t = p("q<1>.get.p99", "< 5ms").unwrap();
        assert_eq!(t.value, 5000.0);
        let t = p("q<1>.error_rate", "< 1%").unwrap();
        assert_eq!(t.value, 0.01);
        assert!(p("q<1>.violations", "== 0").is_ok());
        assert!(p("nope.get.p99", "< 5ms")
            .unwrap_err()
            .message
            .contains("no workload"));
        assert!(p("q<1>.put.p99", "< 5ms")
            .unwrap_err()
            .message
            .contains("no operation"));
        assert!(p("q<1>.get.p98", "< 5ms")
            .unwrap_err()
            .message
            .contains("unknown statistic"));
        assert!(p("q<1>.get.p99", "< 5")
            .unwrap_err()
            .message
            .contains("unit"));
    }
}
