//! What each fault did, measured where it hurt. A fault's **impact window** runs from its
//! injection until every workload is back to normal: no errors and every operation's p99 within
//! 1.5× of its value before the first fault (at least 5 ms above it: timer and scheduling noise),
//! held for three slots in a row (300 ms), with the workload served again (a workload that completes nothing is not back). Windowed faults last at
//! least until their heal. The window ends on a slot boundary (100 ms resolution), so
//! `{during:<fault>}` is an exact union of slots.
//!
//! Per workload it also measures the unavailability the clients saw, at 10 ms resolution: from
//! the last success before the first failure to the first success of an operation sent after that
//! failure; the errors by kind inside the window; and what the safety oracles counted there.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{FaultRecord, Impact, Unavailability, WorkloadImpact};
use crate::metrics::{Collector, Interval, LatencyStats, OpAcc, PULSE};
use crate::valkey::ErrorKind;

/// How long a workload must look normal to count as recovered: long enough not to be fooled by
/// one lucky slot, short enough that a later unrelated hiccup does not stretch the window.
const SETTLE: Duration = Duration::from_millis(300);
/// At the end of the load a shorter settled stretch is accepted, but not less than this.
const SETTLE_MIN: Duration = Duration::from_millis(200);
/// Slack on top of 1.5× the baseline p99 (timer and scheduling noise at sub-ms latencies).
const SLACK_US: f64 = 5000.0;

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Fill in every injected fault's impact (and the older per-fault fields from it).
pub fn analyse(faults: &mut [FaultRecord], c: &Collector, load_end_secs: f64) {
    let load_end = Duration::from_secs_f64(load_end_secs);
    let first_inject = faults
        .iter()
        .filter_map(|f| f.injected_at_secs)
        .fold(f64::INFINITY, f64::min);
    let baseline_end = if first_inject.is_finite() {
        Duration::from_secs_f64(first_inject)
    } else {
        load_end
    };
    let before = c.window(Duration::ZERO, baseline_end);
    // Injections in time order: a fault's failures are searched until the next one.
    let mut starts: Vec<f64> = faults.iter().filter_map(|f| f.injected_at_secs).collect();
    starts.sort_by(f64::total_cmp);
    for f in faults.iter_mut() {
        let Some(inj) = f.injected_at_secs else {
            continue;
        };
        let next = starts
            .iter()
            .copied()
            .find(|s| *s > inj + 1e-9)
            .unwrap_or(f64::INFINITY);
        let heal = f.healed_at_secs.unwrap_or(load_end_secs).max(inj);
        f.impact = Some(measure(c, &before, inj, heal, next, load_end));
        let imp = f.impact.as_ref().expect("just set");
        f.errors_during = imp.workloads.iter().map(|w| w.errors).sum();
        f.p99_recovery_secs = Some(round3((imp.until_secs - heal).max(0.0)));
        f.unavailability = imp
            .workloads
            .iter()
            .filter_map(|w| {
                Some(Unavailability {
                    workload: w.workload.clone(),
                    first_error_secs: w.first_failure_secs?,
                    recovered_secs: w.first_success_after_secs,
                    window_secs: w.unavailable_ms.map(|ms| round3(ms / 1000.0)),
                })
            })
            .collect();
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Per-op p99 limits of one workload from its baseline: `None` where there is no baseline.
fn limits(before: &[OpAcc]) -> Vec<Option<f64>> {
    before
        .iter()
        .map(|a| {
            (a.ok() > 0).then(|| {
                let p99 = LatencyStats::of(&a.corrected).p99 as f64;
                (p99 * 1.5).max(p99 + SLACK_US)
            })
        })
        .collect()
}

/// The slots of workload `w` in `[from, to)`, summed per op, and their errors.
fn span(c: &Collector, slots: &[&Interval], w: usize) -> (Vec<OpAcc>, u64, u64) {
    let (from, to) = match (slots.first(), slots.last()) {
        (Some(a), Some(b)) => (a.start, b.end),
        _ => return (vec![], 0, 0),
    };
    let accs = c.window(from, to).swap_remove(w);
    let ok = accs.iter().map(|a| a.ok()).sum();
    let errors = accs.iter().map(|a| a.error_count()).sum();
    (accs, ok, errors)
}

/// Whether workload `w` looks normal over `slots`.
fn normal(c: &Collector, slots: &[&Interval], w: usize, lim: &[Option<f64>], served: bool) -> bool {
    let (accs, ok, errors) = span(c, slots, w);
    if errors > 0 || (served && ok == 0) {
        return false;
    }
    accs.iter().zip(lim.iter()).all(|(a, l)| match l {
        Some(limit) if a.ok() > 0 => LatencyStats::of(&a.corrected).p99 as f64 <= *limit,
        _ => true,
    })
}

fn measure(
    c: &Collector,
    before: &[Vec<OpAcc>],
    inj: f64,
    heal: f64,
    next: f64,
    load_end: Duration,
) -> Impact {
    let inj_d = Duration::from_secs_f64(inj);
    let heal_d = Duration::from_secs_f64(heal);
    let eps = Duration::from_micros(1);
    // Candidate recovery points: slot starts from the injection on.
    let slots: Vec<&Interval> = c
        .intervals
        .iter()
        .filter(|iv| iv.start + eps >= inj_d)
        .collect();
    let mut workloads = vec![];
    let mut until = heal_d.max(inj_d);
    let mut recovered = true;
    for (w, m) in c.workloads.iter().enumerate() {
        let lim = limits(&before[w]);
        let served = before[w].iter().any(|a| a.ok() > 0);
        let mut back = None;
        for (i, s) in slots.iter().enumerate() {
            if s.start + eps < heal_d {
                continue;
            }
            let settle_end = s.start + SETTLE;
            let stretch: Vec<&Interval> = slots[i..]
                .iter()
                .copied()
                .take_while(|x| x.start < settle_end)
                .collect();
            let covered = stretch.last().map(|x| x.end).unwrap_or(s.start);
            let long_enough = covered >= settle_end.min(load_end)
                && covered.saturating_sub(s.start) >= SETTLE_MIN.min(SETTLE);
            if long_enough && normal(c, &stretch, w, &lim, served) {
                back = Some(s.start);
                break;
            }
        }
        let pulse = pulse_window(c, w, inj, next.min(load_end.as_secs_f64()));
        let back_at = match (back, pulse.recovered) {
            (Some(b), Some(r)) => Some(b.max(snap_up(c, r, inj_d))),
            (Some(b), None) if pulse.first_failure.is_none() => Some(b),
            (Some(_), None) => None,
            (None, _) => None,
        };
        match back_at {
            Some(b) => until = until.max(b),
            None => recovered = false,
        }
        // Errors by kind inside the window are filled in once the window is known.
        workloads.push((
            w,
            WorkloadImpact {
                workload: m.id.clone(),
                back_to_normal_secs: back_at.map(|b| round3(secs(b))),
                first_failure_secs: pulse.first_failure.map(round3),
                last_success_before_secs: pulse.last_success.map(round3),
                first_success_after_secs: pulse.recovered.map(round3),
                unavailable_ms: pulse.unavailable_ms,
                errors: 0,
                errors_by_kind: BTreeMap::new(),
                p99_before_us: before[w]
                    .iter()
                    .map(|a| LatencyStats::of(&a.corrected).p99)
                    .max()
                    .unwrap_or(0),
                p99_during_us: 0,
            },
        ));
    }
    if !recovered {
        until = until.max(load_end);
    }
    let window = c.window(inj_d, until.max(inj_d + eps));
    let mut errors_by_kind: BTreeMap<String, u64> = BTreeMap::new();
    let mut out = vec![];
    for (w, mut wi) in workloads {
        for a in &window[w] {
            for k in ErrorKind::ALL {
                let n = a.errors[k.index()];
                if n > 0 {
                    *wi.errors_by_kind.entry(k.name().to_string()).or_insert(0) += n;
                    *errors_by_kind.entry(k.name().to_string()).or_insert(0) += n;
                }
            }
            wi.errors += a.error_count();
        }
        wi.p99_during_us = window[w]
            .iter()
            .map(|a| LatencyStats::of(&a.corrected).p99)
            .max()
            .unwrap_or(0);
        out.push(wi);
    }
    let mut safety = BTreeMap::new();
    for m in &c.workloads {
        for (d, n) in m.counters.between(inj_d, until) {
            if d.kind == crate::plan::CounterKind::Safety && n > 0 {
                safety.insert(format!("{}.{}", m.id, d.name), n);
            }
        }
    }
    Impact {
        until_secs: secs(until),
        window_ms: ((secs(until) - inj) * 1000.0).round(),
        recovered,
        workloads: out,
        errors_by_kind,
        safety,
    }
}

/// The first slot boundary at or after `t` seconds (and after `floor`).
fn snap_up(c: &Collector, t: f64, floor: Duration) -> Duration {
    let t = Duration::from_secs_f64(t);
    c.intervals
        .iter()
        .map(|iv| iv.end)
        .filter(|e| *e >= t && *e >= floor)
        .min()
        .unwrap_or(t)
}

struct PulseWindow {
    first_failure: Option<f64>,
    last_success: Option<f64>,
    recovered: Option<f64>,
    unavailable_ms: Option<f64>,
}

/// Unavailability from the outcome pulse: the first failure completing in `[inj, until)`, the
/// last success completing before it, and the first success of an operation sent after it.
fn pulse_window(c: &Collector, w: usize, inj: f64, until: f64) -> PulseWindow {
    let p = &c.pulses[w];
    let b = |t: f64| (t / PULSE.as_secs_f64()).floor().max(0.0) as usize;
    let t = |b: usize| b as f64 * PULSE.as_secs_f64();
    let mut out = PulseWindow {
        first_failure: None,
        last_success: None,
        recovered: None,
        unavailable_ms: None,
    };
    let end = b(until).min(p.by_end.len());
    let Some(f) = (b(inj)..end).find(|i| p.by_end[*i].1 > 0) else {
        return out;
    };
    out.first_failure = Some(t(f));
    let last_ok = (0..f).rev().find(|i| p.by_end[*i].0 > 0);
    out.last_success = last_ok.map(|i| t(i + 1));
    // Sent strictly after the failure's 10 ms bucket: earlier sends may have succeeded before it.
    let rec = p
        .first_ok_end_by_sent
        .iter()
        .skip(f + 1)
        .copied()
        .filter(|e| *e != u32::MAX)
        .min();
    out.recovered = rec.map(|e| t(e as usize + 1));
    if let (Some(l), Some(r)) = (out.last_success.or(Some(t(f))), out.recovered) {
        out.unavailable_ms = Some(((r - l) * 1000.0).round());
    }
    out
}
