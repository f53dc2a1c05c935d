//! Phase thresholds (`{before}`, `{during:<fault>}`, `{after}`) judged again on a merged run,
//! as one agent judges them: over the exact slots of the phase, added up over every input.
//!
//! Each input keeps its own slots: the successes' histograms of its `.hlog` (100 ms slots by
//! intended start, cut exactly at every injection and heal, timestamps to the millisecond) and
//! the failed operations of its summary's `slot_errors`. A slot belongs to a phase when its
//! middle lies inside one of the phase's windows (`summary::phase::windows`). A sharded run has
//! one fault timeline ([`timelines`]) on its shared time zero (the same instant behind a start
//! barrier; the wall-clock difference of the `started_at`s otherwise), so the server faults only
//! shard 0 injected cover every shard's operations; separate runs keep their own. The phase lasts
//! the longest of the inputs' windows (for rates).

use std::collections::{BTreeMap, HashMap};

use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;

use super::error::{bad, MergeError};
use super::input::Input;
use crate::metrics::new_hist;
use crate::plan::{Phase, Threshold};
use crate::summary::check::{PhaseFigures, PhaseOp};
use crate::summary::phase::{fault_end, windows, Window};
use crate::summary::{FaultRecord, RunSummary};

/// One input's interval log, by tag: `(from, to, base64 histogram)` per slot.
pub struct Slots {
    by_tag: HashMap<String, Vec<(f64, f64, String)>>,
}

/// Read every input's interval log into slots (decoded only when a phase needs them).
pub fn read(inputs: &[Input]) -> Result<Vec<Slots>, MergeError> {
    inputs
        .iter()
        .map(|i| {
            let mut by_tag: HashMap<String, Vec<(f64, f64, String)>> = HashMap::new();
            for e in IntervalLogIterator::new(&i.hlog) {
                match e {
                    Ok(LogEntry::Interval(h)) => {
                        let tag = h.tag().map(|t| t.as_str().to_string()).unwrap_or_default();
                        let from = h.start_timestamp().as_secs_f64();
                        by_tag.entry(tag).or_default().push((
                            from,
                            from + h.duration().as_secs_f64(),
                            h.encoded_histogram().to_string(),
                        ));
                    }
                    Ok(_) => {}
                    Err(e) => {
                        return Err(bad(
                            &i.hlog_path,
                            format!("not an HdrHistogram interval log ({e:?})"),
                        ))
                    }
                }
            }
            Ok(Slots { by_tag })
        })
        .collect()
}

/// The fault names by `[[fault]]` index, from every input's records (for `{during:<name>}`).
pub fn fault_names(inputs: &[Input]) -> Vec<String> {
    let mut names: Vec<Option<String>> = vec![];
    for i in inputs {
        for f in &i.summary.faults {
            if names.len() <= f.index {
                names.resize(f.index + 1, None);
            }
            names[f.index].get_or_insert_with(|| f.name.clone());
        }
    }
    names
        .into_iter()
        .enumerate()
        .map(|(k, n)| n.unwrap_or_else(|| format!("#{k}")))
        .collect()
}

/// Each input's time zero, in seconds after the earliest one (0 where unreadable).
fn offsets(inputs: &[Input]) -> Vec<f64> {
    let zero = inputs.iter().filter_map(|i| i.summary.started()).min();
    inputs
        .iter()
        .map(|i| match (zero, i.summary.started()) {
            (Some(z), Some(t)) => t.duration_since(z).map_or(0.0, |d| d.as_secs_f64()),
            _ => 0.0,
        })
        .collect()
}

/// The fault records each input's phase windows come from. Unsharded inputs are separate runs:
/// each its own. A sharded run has one timeline: every occurrence of a fault once, from its
/// earliest injection to the latest end of its window over the shards that ran it (one agent's
/// window, too, lasts until every client is back to normal), on the shared time zero, seen from
/// each input's own time zero. Server faults ran on shard 0 only, so their windows are shard 0's
/// and cover every shard's operations.
pub fn timelines(inputs: &[Input], sharded: bool) -> Vec<Vec<FaultRecord>> {
    if !sharded {
        return inputs.iter().map(|i| i.summary.faults.clone()).collect();
    }
    let off = offsets(inputs);
    // (fault index, occurrence) → [from, to) on the common clock.
    let mut common: BTreeMap<(usize, usize), (FaultRecord, f64, f64)> = BTreeMap::new();
    for (i, input) in inputs.iter().enumerate() {
        let mut nth: HashMap<usize, usize> = HashMap::new();
        let mut faults: Vec<&FaultRecord> = input.summary.faults.iter().collect();
        let at = |f: &FaultRecord| f.injected_at_secs.unwrap_or(f64::INFINITY);
        faults.sort_by(|a, b| at(a).total_cmp(&at(b)));
        for f in faults {
            let (Some(from), Some(to)) = (
                f.injected_at_secs,
                fault_end(f, input.summary.duration_secs),
            ) else {
                continue;
            };
            let k = nth.entry(f.index).or_default();
            let (from, to) = (from + off[i], to + off[i]);
            common
                .entry((f.index, *k))
                .and_modify(|c| {
                    c.1 = c.1.min(from);
                    c.2 = c.2.max(to);
                })
                .or_insert_with(|| (f.clone(), from, to));
            *k += 1;
        }
    }
    off.iter()
        .map(|d| {
            common
                .values()
                .map(|(f, from, to)| FaultRecord {
                    injected_at_secs: Some(from - d),
                    healed_at_secs: Some(to - d),
                    impact: None,
                    ..f.clone()
                })
                .collect()
        })
        .collect()
}

fn inside(ws: &[Window], from: f64, to: f64) -> bool {
    let mid = from + (to - from).max(0.0) / 2.0;
    ws.iter().any(|w| w.contains(mid))
}

/// Phase figures from the merged slots of every input (each input's windows on the shared time
/// zero).
pub struct Merged<'a> {
    pub inputs: &'a [Input],
    pub slots: Vec<Slots>,
    pub timelines: Vec<Vec<FaultRecord>>,
}

impl crate::summary::build::PhaseSource for Merged<'_> {
    fn figures(&self, t: &Threshold, p: &Phase, s: &RunSummary) -> Option<PhaseFigures> {
        let ops: Vec<String> = s
            .ops
            .iter()
            .filter(|o| o.workload == t.workload)
            .map(|o| o.op.clone())
            .collect();
        figures(self.inputs, &self.slots, &self.timelines, &ops, t, p)
    }
}

/// The phase's figures of the threshold's workload over every input.
fn figures(
    inputs: &[Input],
    slots: &[Slots],
    timelines: &[Vec<FaultRecord>],
    ops: &[String],
    t: &Threshold,
    p: &Phase,
) -> Option<PhaseFigures> {
    let mut acc: Vec<PhaseOp> = ops
        .iter()
        .map(|op| PhaseOp {
            op: op.clone(),
            latency: new_hist(),
            errors: 0,
        })
        .collect();
    let mut secs: Option<f64> = None;
    let mut de = Deserializer::new();
    for (i, input) in inputs.iter().enumerate() {
        let dur = input.summary.duration_secs;
        let ws: Vec<Window> = windows(p, &timelines[i], dur)
            .into_iter()
            .map(|w| Window {
                from: w.from,
                to: w.to.min(dur + 3600.0),
            })
            .collect();
        if ws.is_empty() {
            continue;
        }
        let mine: f64 = ws.iter().map(|w| w.clamp(dur).secs()).sum();
        secs = Some(secs.map_or(mine, |s: f64| s.max(mine)));
        for o in acc.iter_mut() {
            let tag = format!("{}.{}", t.workload, o.op);
            for (from, to, b64) in slots[i].by_tag.get(&tag).into_iter().flatten() {
                if !inside(&ws, *from, *to) {
                    continue;
                }
                let h: Histogram<u64> = crate::metrics::hlog::base64_decode(b64)
                    .and_then(|b| de.deserialize(&mut b.as_slice()).ok())?;
                o.latency.add(&h).ok()?;
            }
            o.errors += input
                .summary
                .slot_errors
                .iter()
                .filter(|e| e.workload == t.workload && e.op == o.op)
                .filter(|e| inside(&ws, e.from_secs, e.to_secs))
                .map(|e| e.errors)
                .sum::<u64>();
        }
    }
    Some(PhaseFigures {
        ops: acc,
        secs: secs?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Phase;
    use std::path::PathBuf;

    fn rec(index: usize, from: f64, to: f64) -> FaultRecord {
        FaultRecord {
            inject_error: None,
            recover_within_secs: None,
            imitation: None,
            index,
            name: format!("f{index}"),
            kind: "latency".into(),
            target: "primary".into(),
            injected_at_secs: Some(from),
            healed_at_secs: Some(to),
            heal_error: None,
            skipped: None,
            unavailability: vec![],
            p99_recovery_secs: None,
            errors_during: 0,
            impact: None,
        }
    }

    fn input(shard: u32, started_at: &str, faults: Vec<FaultRecord>) -> Input {
        let mut s = crate::report::html::tests::sample();
        s.shard = Some(format!("{shard}/2"));
        s.shard_index = Some(shard);
        s.shard_count = Some(2);
        s.started_at = started_at.into();
        s.duration_secs = 10.0;
        s.faults = faults;
        Input {
            summary_path: PathBuf::new(),
            hlog_path: PathBuf::new(),
            label: shard.to_string(),
            summary: s,
            hlog: vec![],
            histories: vec![],
        }
    }

    #[test]
    fn a_sharded_run_has_one_fault_timeline_on_its_time_zero() {
        // Shard 0 injected a server fault (#0) and a network fault (#1); shard 1 only #1, and
        // its time zero is half a second later.
        let inputs = [
            input(
                0,
                "2025-01-01T00:00:00Z",
                vec![rec(0, 2.0, 3.0), rec(1, 5.0, 6.5)],
            ),
            input(1, "2025-01-01T00:00:00.500Z", vec![rec(1, 4.51, 5.5)]),
        ];
        let t = timelines(&inputs, true);
        let w = |i: usize, p: Phase| windows(&p, &t[i], 10.0);
        let win = |from: f64, to: f64| vec![Window { from, to }];
        assert_eq!(w(0, Phase::During(0)), win(2.0, 3.0));
        assert_eq!(
            w(1, Phase::During(0)),
            win(1.5, 2.5),
            "shard 0's fault, on shard 1's clock"
        );
        // One window for #1 over both shards: the earliest injection to the latest end.
        assert_eq!(w(0, Phase::During(1)), win(5.0, 6.5));
        assert_eq!(w(1, Phase::During(1)), win(4.5, 6.0));
        assert_eq!(w(1, Phase::Before), win(0.0, 1.5));
        assert_eq!(w(1, Phase::After)[0].from, 6.0);
        // Separate runs keep their own timelines.
        let own = timelines(&inputs, false);
        assert!(windows(&Phase::During(0), &own[1], 10.0).is_empty());
        assert_eq!(fault_names(&inputs), ["f0", "f1"]);
    }

    #[test]
    fn a_slot_belongs_where_its_middle_is() {
        let ws = [Window {
            from: 10.0003,
            to: 11.0,
        }];
        // The sliver before the cut, rounded to the millisecond by the log: [10.000, 10.000).
        assert!(!inside(&ws, 10.0, 10.0));
        // The slot after the cut: [10.000, 10.100) in the log.
        assert!(inside(&ws, 10.0, 10.1));
        assert!(inside(&ws, 10.9, 11.0));
        assert!(!inside(&ws, 11.0, 11.1));
    }
}
