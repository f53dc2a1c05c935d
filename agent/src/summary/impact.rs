//! What each fault did: unavailability per workload, errors while it lasted, and how long latency
//! took to recover, measured from the recorded intervals.

use std::time::Duration;

use super::{FaultRecord, Unavailability};
use crate::metrics::{Collector, LatencyStats};

/// Fill in per-fault unavailability windows, p99 recovery and error counts from the intervals.
pub fn analyse(faults: &mut [FaultRecord], c: &Collector, duration_secs: f64) {
    let secs = |d: Duration| d.as_secs_f64();
    for f in faults.iter_mut() {
        let Some(inj) = f.injected_at_secs else {
            continue;
        };
        let healed = f.healed_at_secs.unwrap_or(duration_secs);
        // Errors during the window (interval resolution).
        let mut errors = 0;
        for iv in &c.intervals {
            if secs(iv.end) > inj && secs(iv.start) < healed.max(inj + 0.001) {
                errors += iv
                    .ops
                    .iter()
                    .map(|o| o.errors.iter().sum::<u64>())
                    .sum::<u64>();
            }
        }
        f.errors_during = errors;
        // Unavailability per workload: first failing interval at or after injection → first interval with successes and no errors.
        for (wi, m) in c.workloads.iter().enumerate() {
            let mut first_err = None;
            let mut back = None;
            for iv in c.intervals.iter().filter(|iv| secs(iv.end) > inj) {
                let (ok, err) = iv
                    .ops
                    .iter()
                    .filter(|o| o.workload == wi)
                    .fold((0, 0), |a, o| {
                        (a.0 + o.ok, a.1 + o.errors.iter().sum::<u64>())
                    });
                if first_err.is_none() {
                    // Only errors that start while this fault is in place (plus a second of slack)
                    // are its own; later ones belong to whatever comes next.
                    if secs(iv.start) > healed + 1.0 {
                        break;
                    }
                    if err > 0 {
                        first_err = Some(secs(iv.start).max(inj));
                    }
                } else if ok > 0 && err == 0 {
                    back = Some(secs(iv.start));
                    break;
                }
            }
            if let Some(fe) = first_err {
                f.unavailability.push(Unavailability {
                    workload: m.id.clone(),
                    first_error_secs: fe,
                    recovered_secs: back,
                    window_secs: back.map(|b| ((b - fe) * 1000.0).round() / 1000.0),
                });
            }
        }
        // p99 recovery: baseline = p99 before injection; recovered at the first interval after the heal
        // from which the next three are all within 1.5x baseline + 1ms.
        let before = c.window(Duration::ZERO, Duration::from_secs_f64(inj));
        let base = before
            .iter()
            .flatten()
            .map(|o| LatencyStats::of(&o.corrected).p99)
            .max()
            .unwrap_or(0);
        if base == 0 {
            continue;
        }
        let limit = base as f64 * 1.5 + 1000.0;
        let after: Vec<_> = c
            .intervals
            .iter()
            .filter(|iv| secs(iv.start) >= healed)
            .collect();
        for (i, iv) in after.iter().enumerate() {
            let ok_here = |iv: &&crate::metrics::Interval| {
                iv.ops
                    .iter()
                    .all(|o| o.ok == 0 || (o.p99_us as f64) <= limit)
            };
            if after[i..].iter().take(3).all(ok_here) {
                f.p99_recovery_secs =
                    Some(((secs(iv.start) - healed).max(0.0) * 1000.0).round() / 1000.0);
                break;
            }
        }
    }
}
