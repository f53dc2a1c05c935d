//! Locks: no two holds of one name may overlap, and fencing tokens must grow in grant order.
//!
//! A hold starts when its grant's reply arrived (`acquire` `ok`) and ends when its release was
//! about to be sent (`release` `invoke`) — what the holder believed. Holds that overlap are
//! **violations** (one per grant that started while another hold was live); the earlier holder's
//! hold was **lost** (someone else got the lock while it believed it held it), as is a hold whose
//! release or extend found the lock no longer theirs. A token not above the previous grant's is a
//! **fencing regression**.

use std::collections::{BTreeMap, HashMap};

use super::Clock;
use crate::history::{Entry, Type};
use crate::plan::LockCounter as C;

/// The lock oracle's findings as the lock workload's counters.
pub fn findings(entries: &[Entry], clock: Clock, end: u64) -> super::Findings {
    let f = check(entries, clock, end);
    super::Findings {
        note: (f.worst_overlap_ns > 0).then(|| {
            format!(
                "{} overlapping holds, the worst {:.1} ms",
                f.violations.len(),
                f.worst_overlap_ns as f64 / 1e6
            )
        }),
        levels: vec![(C::Checked.i(), f.holds)],
        uncertain: f.uncertain,
        events: vec![
            (C::Violations.i(), f.violations),
            (C::LostWhileHeld.i(), f.lost),
            (C::FencingViolations.i(), f.fence_regressions),
        ],
    }
}

/// One believed hold.
#[derive(Debug, Clone)]
struct Hold {
    process: String,
    start: u64,
    end: u64,
    fence: Option<i64>,
    /// The release or an extend found the lock gone or someone else's.
    lost: bool,
}

/// What the checker found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Findings {
    /// Holds checked.
    pub holds: u64,
    /// Times (on the clock used) of grants that started while another hold of the name was live.
    pub violations: Vec<u64>,
    /// Times of holds that were lost while believed held.
    pub lost: Vec<u64>,
    /// Times of grants whose fencing token was not above the previous grant's.
    pub fence_regressions: Vec<u64>,
    /// The longest overlap seen (ns).
    pub worst_overlap_ns: u64,
    /// Overlaps shorter than the clock's tolerance (several hosts): not counted, not excluded.
    pub uncertain: u64,
}

/// Check the lock histories (any number of agents). `end` closes holds never released (the run
/// ended, or the holder died) at that time on the clock used.
pub fn check(entries: &[Entry], clock: Clock, end: u64) -> Findings {
    // Pair each grant with its holder's next release of that name.
    let mut open: HashMap<(&str, &str), Hold> = HashMap::new();
    let mut by_key: BTreeMap<String, Vec<Hold>> = BTreeMap::new();
    let mut sorted: Vec<&Entry> = entries.iter().collect();
    sorted.sort_by_key(|e| (clock.at(e), e.kind == Type::Invoke));
    for e in sorted {
        let Some(key) = e.key.as_deref() else {
            continue;
        };
        let who = (e.process.as_str(), key);
        match (e.f.as_str(), e.kind) {
            ("acquire", Type::Ok) => {
                if let Some(h) = open.remove(&who) {
                    by_key.entry(key.to_string()).or_default().push(h);
                }
                open.insert(
                    who,
                    Hold {
                        process: e.process.clone(),
                        start: clock.at(e),
                        end,
                        fence: e.fence,
                        lost: false,
                    },
                );
            }
            ("release", Type::Invoke) => {
                if let Some(mut h) = open.remove(&who) {
                    h.end = clock.at(e);
                    by_key.entry(key.to_string()).or_default().push(h);
                }
            }
            // A release or extend that found the lock not ours: that hold was lost.
            ("release" | "extend", Type::Ok)
                if e.value.as_ref().and_then(|v| v.as_i64()) == Some(0) =>
            {
                if let Some(h) = open.get_mut(&who) {
                    h.lost = true;
                } else if let Some(h) = by_key
                    .get_mut(key)
                    .and_then(|v| v.iter_mut().rev().find(|h| h.process == e.process))
                {
                    h.lost = true;
                }
            }
            _ => {}
        }
    }
    for ((_, key), h) in open {
        by_key.entry(key.to_string()).or_default().push(h);
    }
    let tol = clock.tolerance();
    let mut f = Findings::default();
    for holds in by_key.values_mut() {
        holds.sort_by_key(|h| h.start);
        f.holds += holds.len() as u64;
        // The live hold that ends last, and the fencing token before each grant.
        let mut live: Option<usize> = None;
        let mut last_fence: Option<i64> = None;
        let mut lost = vec![false; holds.len()];
        for i in 0..holds.len() {
            if let Some(j) = live {
                if holds[j].end > holds[i].start && holds[j].process != holds[i].process {
                    let overlap = holds[j].end.min(holds[i].end) - holds[i].start;
                    if overlap > tol {
                        f.violations.push(holds[i].start);
                        f.worst_overlap_ns = f.worst_overlap_ns.max(overlap);
                        lost[j] = true;
                    } else {
                        f.uncertain += 1;
                    }
                }
            }
            if let (Some(t), Some(prev)) = (holds[i].fence, last_fence) {
                if t <= prev {
                    f.fence_regressions.push(holds[i].start);
                }
            }
            if let Some(t) = holds[i].fence {
                last_fence = Some(last_fence.map_or(t, |p| p.max(t)));
            }
            if live.is_none_or(|j| holds[i].end > holds[j].end) {
                live = Some(i);
            }
        }
        for (i, h) in holds.iter().enumerate() {
            if lost[i] || h.lost {
                f.lost.push(h.start);
            }
        }
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(kind: Type, f: &str, process: &str, key: &str, mono: u64, fence: Option<i64>) -> Entry {
        Entry {
            kind,
            f: f.into(),
            process: process.into(),
            key: Some(key.into()),
            value: None,
            fence,
            sent: None,
            ttl_ms: None,
            aux: None,
            mono,
            wall: mono,
            host: "h".into(),
        }
    }

    #[test]
    fn overlaps_across_agents_are_violations() {
        let h = vec![
            e(Type::Ok, "acquire", "a/1", "k", 10, Some(1)),
            e(Type::Invoke, "release", "a/1", "k", 20, None),
            // Agent b holds k from 15: overlaps a's hold by 5.
            e(Type::Ok, "acquire", "b/1", "k", 15, Some(2)),
            e(Type::Invoke, "release", "b/1", "k", 30, None),
            // Back to back is fine; a token that went backwards is not.
            e(Type::Ok, "acquire", "a/2", "k", 30, Some(2)),
            e(Type::Invoke, "release", "a/2", "k", 40, None),
            // Another name, never released: closed at the end.
            e(Type::Ok, "acquire", "a/3", "j", 5, None),
        ];
        let f = check(&h, Clock::Mono, 100);
        assert_eq!(f.holds, 4);
        assert_eq!(f.violations, vec![15]);
        assert_eq!(f.lost, vec![10]);
        assert_eq!(f.fence_regressions, vec![30]);
        assert_eq!(f.worst_overlap_ns, 5);
        // Several hosts: overlaps within the clock skew cannot be told apart.
        let f = check(&h, Clock::Wall { tolerance_ns: 6 }, 100);
        assert!(f.violations.is_empty());
        assert_eq!(f.uncertain, 1);
    }

    #[test]
    fn a_release_that_found_the_lock_gone_means_the_hold_was_lost() {
        let mut r = e(Type::Ok, "release", "a/1", "k", 21, None);
        r.value = Some(0.into());
        let h = vec![
            e(Type::Ok, "acquire", "a/1", "k", 10, None),
            e(Type::Invoke, "release", "a/1", "k", 20, None),
            r,
        ];
        let f = check(&h, Clock::Mono, 100);
        assert!(f.violations.is_empty());
        assert_eq!(f.lost, vec![10]);
    }
}
