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
    let mut during: Vec<(String, Phase, Window)> = faults
        .iter()
        .filter_map(|f| {
            let (from, to) = (f.injected_at_secs?, fault_end(f, load_end)?);
            Some((
                format!("during:{}", f.name),
                Phase::During(f.index),
                Window { from, to },
            ))
        })
        .collect();
    during.sort_by(|a, b| a.2.from.total_cmp(&b.2.from));
    out.extend(during);
    for w in windows(&Phase::After, faults, load_end) {
        if w.from < load_end {
            out.push(("after".to_string(), Phase::After, w));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::fmt::Write;

    use super::*;
    use crate::summary::Impact;

    const END: f64 = 10.0;

    /// A fault record: `index`, `name`, injected, healed, impact until (seconds).
    fn f(
        index: usize,
        name: &str,
        inj: Option<f64>,
        heal: Option<f64>,
        until: Option<f64>,
    ) -> FaultRecord {
        FaultRecord {
            inject_error: None,
            recover_within_secs: None,
            imitation: None,
            index,
            name: name.into(),
            kind: "latency".into(),
            target: String::new(),
            injected_at_secs: inj,
            healed_at_secs: heal,
            heal_error: None,
            skipped: inj.is_none().then(|| "refused".into()),
            unavailability: vec![],
            p99_recovery_secs: None,
            errors_during: 0,
            impact: until.map(|u| Impact {
                until_secs: u,
                window_ms: 0.0,
                recovered: true,
                workloads: vec![],
                errors_by_kind: Default::default(),
                safety: Default::default(),
            }),
        }
    }

    fn show(ws: &[Window]) -> String {
        let v: Vec<String> = ws
            .iter()
            .map(|w| format!("[{}, {})", w.from, w.to))
            .collect();
        v.join(" ")
    }

    /// The windows of each phase, one per line: `before`, `during:<i>`, `after:<i>`, `after`.
    fn check(faults: &[FaultRecord], phases: &[Phase], expect: &str) {
        let mut got = String::new();
        for p in phases {
            let label = match p {
                Phase::Before => "before".to_string(),
                Phase::During(i) => format!("during:{i}"),
                Phase::AfterFault(i) => format!("after:{i}"),
                Phase::After => "after".to_string(),
            };
            let _ = writeln!(got, "{label} {}", show(&windows(p, faults, END)));
        }
        let want: Vec<&str> = expect.trim().lines().map(str::trim).collect();
        let have: Vec<&str> = got.trim().lines().map(str::trim).collect();
        assert_eq!(have, want, "\n{got}");
    }

    /// Every labelled phase [`all`] lists, one per line.
    fn check_all(faults: &[FaultRecord], expect: &str) {
        let mut got = String::new();
        for (label, _, w) in all(faults, END) {
            let _ = writeln!(got, "{label} {}", show(&[w]));
        }
        let want: Vec<&str> = expect.trim().lines().map(str::trim).collect();
        let have: Vec<&str> = got.trim().lines().map(str::trim).collect();
        assert_eq!(have, want, "\n{got}");
    }

    const ALL: &[Phase] = &[
        Phase::Before,
        Phase::During(0),
        Phase::AfterFault(0),
        Phase::During(1),
        Phase::AfterFault(1),
        Phase::After,
    ];

    #[test]
    fn no_faults_the_whole_load_is_before() {
        check(
            &[],
            ALL,
            "
            before [0, 10)
            during:0
            after:0
            during:1
            after:1
            after",
        );
        check_all(&[], "before [0, 10)");
    }

    #[test]
    fn one_fault_splits_the_run_at_its_injection_and_its_measured_end() {
        let faults = [f(0, "slow", Some(2.0), Some(3.0), Some(4.5))];
        check(
            &faults,
            ALL,
            "
            before [0, 2)
            during:0 [2, 4.5)
            after:0 [4.5, inf)
            during:1
            after:1
            after [4.5, inf)",
        );
        check_all(
            &faults,
            "
            before [0, 2)
            during:slow [2, 4.5)
            after [4.5, inf)",
        );
    }

    #[test]
    fn without_an_impact_a_phase_ends_at_the_heal_else_at_the_end_of_load() {
        check(
            &[f(0, "slow", Some(2.0), Some(3.0), None)],
            &[Phase::During(0), Phase::After],
            "
            during:0 [2, 3)
            after [3, inf)",
        );
        // Unmeasured heal: the fault runs to the end of the load, and `after` is empty time.
        let open = [f(0, "kill", Some(2.0), None, None)];
        check(
            &open,
            &[Phase::During(0), Phase::AfterFault(0), Phase::After],
            "
            during:0 [2, 10)
            after:0 [10, inf)
            after [10, inf)",
        );
        check_all(
            &open,
            "
            before [0, 2)
            during:kill [2, 10)",
        );
    }

    #[test]
    fn an_end_before_the_injection_is_an_empty_window_at_the_injection() {
        check(
            &[f(0, "x", Some(2.0), Some(1.0), Some(1.5))],
            &[Phase::During(0)],
            "during:0 [2, 2)",
        );
    }

    #[test]
    fn a_repeated_fault_has_a_window_per_occurrence_and_after_it_follows_the_last() {
        let faults = [
            f(0, "blip", Some(2.0), Some(2.5), Some(2.7)),
            f(0, "blip", Some(5.0), Some(5.5), Some(6.0)),
        ];
        check(
            &faults,
            ALL,
            "
            before [0, 2)
            during:0 [2, 2.7) [5, 6)
            after:0 [6, inf)
            during:1
            after:1
            after [6, inf)",
        );
        check_all(
            &faults,
            "
            before [0, 2)
            during:blip [2, 2.7)
            during:blip [5, 6)
            after [6, inf)",
        );
    }

    #[test]
    fn overlapping_faults_after_waits_for_the_last_to_end() {
        let faults = [
            f(0, "slow", Some(2.0), Some(6.0), Some(6.0)),
            f(1, "kill", Some(3.0), Some(3.0), Some(4.0)),
        ];
        check(
            &faults,
            ALL,
            "
            before [0, 2)
            during:0 [2, 6)
            after:0 [6, inf)
            during:1 [3, 4)
            after:1 [4, inf)
            after [6, inf)",
        );
    }

    #[test]
    fn a_skipped_fault_has_no_phase() {
        let faults = [
            f(0, "refused", None, None, None),
            f(1, "slow", Some(4.0), Some(5.0), Some(5.0)),
        ];
        check(
            &faults,
            ALL,
            "
            before [0, 4)
            during:0
            after:0
            during:1 [4, 5)
            after:1 [5, inf)
            after [5, inf)",
        );
        check_all(&[f(0, "refused", None, None, None)], "before [0, 10)");
    }

    #[test]
    fn all_lists_the_phases_in_time_order() {
        // Records come sorted by fault index; the second fault of the file fires first.
        let faults = [
            f(0, "late", Some(6.0), Some(7.0), Some(7.0)),
            f(1, "early", Some(2.0), Some(3.0), Some(3.0)),
        ];
        check_all(
            &faults,
            "
            before [0, 2)
            during:early [2, 3)
            during:late [6, 7)
            after [7, inf)",
        );
    }

    #[test]
    fn fault_end_is_the_impact_else_the_heal_else_the_end_of_load() {
        let cases = [
            (f(0, "a", Some(2.0), Some(3.0), Some(4.0)), Some(4.0)),
            (f(0, "a", Some(2.0), Some(3.0), None), Some(3.0)),
            (f(0, "a", Some(2.0), None, None), Some(END)),
            (f(0, "a", Some(2.0), None, Some(2.4)), Some(2.4)),
            (f(0, "a", Some(2.0), Some(1.0), None), Some(2.0)),
            (f(0, "a", None, Some(3.0), Some(4.0)), None),
        ];
        for (i, (rec, want)) in cases.iter().enumerate() {
            assert_eq!(fault_end(rec, END), *want, "case {i}");
        }
    }

    #[test]
    fn window_contains_clamps_and_measures() {
        let w = Window {
            from: 2.0,
            to: f64::INFINITY,
        };
        assert!(w.contains(2.0) && w.contains(1e9) && !w.contains(1.999));
        assert_eq!(w.clamp(END), Window { from: 2.0, to: END });
        assert_eq!(w.clamp(END).secs(), 8.0);
        assert_eq!(
            Window {
                from: 12.0,
                to: f64::INFINITY
            }
            .clamp(END)
            .secs(),
            0.0
        );
        assert!(!Window { from: 3.0, to: 3.0 }.contains(3.0));
    }
}
