//! Phases as time windows: `before` the first injection, `during:<fault>` each occurrence of a
//! fault (its impact window), `after` the last fault ended, `after:<fault>` that fault ended. The one definition that checks, reports and exporters
//! share. Seconds from the run start.

use crate::plan::Phase;

use super::FaultRecord;

/// `[from, to)` in seconds from the run start; `to` may be infinite (`after` runs into the drain).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub from: f64,
    pub to: f64,
}

impl Window {
    pub fn contains(&self, t: f64) -> bool {
        t >= self.from && t < self.to
    }
    /// The part of the window before `end` (for drawing and rates).
    pub fn clamp(&self, end: f64) -> Window {
        Window {
            from: self.from.min(end),
            to: self.to.min(end),
        }
    }
    pub fn secs(&self) -> f64 {
        (self.to - self.from).max(0.0)
    }
}

/// When an occurrence's phase ends: where its effect ended if that was measured, else its heal,
/// else the end of the load.
pub fn fault_end(f: &FaultRecord, load_end: f64) -> Option<f64> {
    let from = f.injected_at_secs?;
    let to = f
        .impact
        .as_ref()
        .map(|i| i.until_secs)
        .or(f.healed_at_secs)
        .unwrap_or(load_end);
    Some(to.max(from))
}

/// The windows `phase` covers (several for a repeated fault; none for `after` with no fault).
pub fn windows(phase: &Phase, faults: &[FaultRecord], load_end: f64) -> Vec<Window> {
    let spans: Vec<(usize, Window)> = faults
        .iter()
        .filter_map(|f| {
            let from = f.injected_at_secs?;
            Some((
                f.index,
                Window {
                    from,
                    to: fault_end(f, load_end)?,
                },
            ))
        })
        .collect();
    match phase {
        Phase::Before => {
            let first = spans.iter().map(|s| s.1.from).fold(f64::INFINITY, f64::min);
            vec![Window {
                from: 0.0,
                to: if first.is_finite() { first } else { load_end },
            }]
        }
        Phase::After => {
            let last = spans
                .iter()
                .map(|s| s.1.to)
                .fold(f64::NEG_INFINITY, f64::max);
            if last.is_finite() {
                vec![Window {
                    from: last,
                    to: f64::INFINITY,
                }]
            } else {
                vec![]
            }
        }
        Phase::During(i) => spans
            .into_iter()
            .filter(|s| s.0 == *i)
            .map(|s| s.1)
            .collect(),
        Phase::AfterFault(i) => spans
            .iter()
            .filter(|s| s.0 == *i)
            .map(|s| s.1.to)
            .fold(None, |a: Option<f64>, t| Some(a.map_or(t, |a| a.max(t))))
            .map(|from| {
                vec![Window {
                    from,
                    to: f64::INFINITY,
                }]
            })
            .unwrap_or_default(),
    }
}

/// Every phase of a run with a label (`before`, `during:<name>`, `after`), in time order, for
/// reports and exporters.
pub fn all(faults: &[FaultRecord], load_end: f64) -> Vec<(String, Phase, Window)> {
    let mut out = vec![];
    for w in windows(&Phase::Before, faults, load_end) {
        out.push(("before".to_string(), Phase::Before, w));
    }
    for f in faults {
        if let (Some(from), Some(to)) = (f.injected_at_secs, fault_end(f, load_end)) {
            out.push((
                format!("during:{}", f.name),
                Phase::During(f.index),
                Window { from, to },
            ));
        }
    }
    for w in windows(&Phase::After, faults, load_end) {
        if w.from < load_end {
            out.push(("after".to_string(), Phase::After, w));
        }
    }
    out
}
