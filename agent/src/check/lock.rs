//! Locks: no two holds of one name may overlap, and fencing tokens must grow in grant order.
//!
//! A hold starts when its grant's reply arrived (`acquire` `ok`) and ends when its release was
//! about to be sent (`release` `invoke`) — what the holder believed. Holds that overlap are
//! **violations** (one per grant that started while another hold was live); the earlier holder's
//! hold was **lost** (someone else got the lock while it believed it held it), as is a hold whose
//! release or extend found the lock no longer theirs. A token not above the previous grant's is a
//! **fencing regression**.
//!
//! A name is **orphaned** when an acquire failed (the key was there) while nobody held it: no
//! grant of the name was live (from its send, since its reply may still be on the way, to its
//! release's reply, or 1 s after a release whose reply was lost). What happens after a failover
//! when the new primary never received a release, or when a release or an acquire lost its reply:
//! the key stays until its TTL, held by nobody, and every acquirer waits. Orphans are counted with
//! the time acquirers were blocked, from the last hold's end to the next grant (redis-py's `Lock` is
//! not fenced and replication is asynchronous, so this is documented behaviour, not a safety
//! violation; the recovery check judges how long it lasted).

use std::collections::{BTreeMap, HashMap};

use super::clock::Clock;
use crate::history::{Entry, Type};
use crate::plan::LockCounter as C;

/// The lock oracle's findings as the lock workload's counters.
pub fn findings(entries: &[Entry], clock: Clock, end: u64) -> super::findings::Findings {
    let f = check(entries, clock, end);
    let o = orphans(entries, clock, end);
    let mut notes = vec![];
    if f.worst_overlap_ns > 0 {
        notes.push(format!(
            "{} overlapping holds, the worst {:.1} ms",
            f.violations.len(),
            f.worst_overlap_ns as f64 / 1e6
        ));
    }
    if let Some(worst) = o.episodes.iter().max_by_key(|e| e.2 - e.1) {
        notes.push(format!(
            "{} orphaned lock name(s) (held by nobody, still set: acquirers blocked until the \
             TTL), {:.1} s blocked in all, the longest {:.1} s on {}",
            o.episodes.len(),
            o.blocked_ns() as f64 / 1e9,
            (worst.2 - worst.1) as f64 / 1e9,
            worst.0
        ));
    }
    super::findings::Findings {
        note: (!notes.is_empty()).then(|| notes.join("; ")),
        levels: vec![
            (C::Checked.i(), f.holds),
            (C::OrphanedMs.i(), o.blocked_ns() / 1_000_000),
        ],
        uncertain: f.uncertain,
        events: vec![
            (C::Violations.i(), f.violations),
            (C::LostWhileHeld.i(), f.lost),
            (C::FencingViolations.i(), f.fence_regressions),
            (C::Orphaned.i(), o.episodes.iter().map(|e| e.1).collect()),
        ],
        outages: o
            .episodes
            .iter()
            .map(|e| super::findings::Outage {
                from: e.1,
                to: e.3.then_some(e.2),
                what: format!("orphaned lock name {}", e.0),
            })
            .collect(),
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

/// Orphaned names: episodes of acquirers blocked by a key none of the run's commands explains.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Orphans {
    /// `(name, from, to, granted)` on the clock used: from the last explained end of the key (the
    /// release the server forgot) to the next grant of the name (`granted`), or the end of the
    /// history (the name was never granted again).
    pub episodes: Vec<(String, u64, u64, bool)>,
}

impl Orphans {
    /// Nanoseconds acquirers were blocked, over every episode.
    pub fn blocked_ns(&self) -> u64 {
        self.episodes.iter().map(|e| e.2.saturating_sub(e.1)).sum()
    }
}

/// When a name was held by someone: `[from, to]`.
#[derive(Debug, Clone, Copy)]
struct Span {
    from: u64,
    to: u64,
}

/// How long after a release whose reply was lost its holder may still be taken to hold the key
/// (the `DEL` may still be on the way).
const LOST_RELEASE_GRACE_NS: u64 = 1_000_000_000;

/// Find orphaned names. Needs the failed acquires (`acquire` `fail` entries, with `sent`): a
/// history without them finds none. `end` closes an episode that never ended.
pub fn orphans(entries: &[Entry], clock: Clock, end: u64) -> Orphans {
    let tol = clock.tolerance();
    let mut sorted: Vec<&Entry> = entries.iter().filter(|e| e.key.is_some()).collect();
    sorted.sort_by_key(|e| (clock.at(e), e.kind == Type::Invoke));
    // Per name: the holds, grant times, failed attempts.
    let mut spans: BTreeMap<&str, Vec<Span>> = BTreeMap::new();
    let mut grants: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    let mut failed: BTreeMap<&str, Vec<(u64, u64)>> = BTreeMap::new();
    // (process, name) → the open hold's index, and when its release was sent.
    let mut open: HashMap<(&str, &str), (usize, Option<u64>)> = HashMap::new();
    for e in sorted {
        let key = e.key.as_deref().unwrap_or_default();
        let at = clock.at(e);
        let sent = e.sent.map_or(at, |s| clock.related(e, s));
        let who = (e.process.as_str(), key);
        let v = spans.entry(key).or_default();
        match (e.f.as_str(), e.kind) {
            ("acquire", Type::Ok) => {
                // Held from the send (its reply may still be on the way) until released.
                open.insert(who, (v.len(), None));
                v.push(Span {
                    from: sent,
                    to: u64::MAX,
                });
                grants.entry(key).or_default().push(at);
            }
            ("release", Type::Invoke) => {
                if let Some(h) = open.get_mut(&who) {
                    h.1 = Some(at);
                }
            }
            ("release", Type::Ok) => {
                if let Some((i, _)) = open.remove(&who) {
                    v[i].to = at;
                }
            }
            ("release", Type::Info) => {
                if let Some((i, invoked)) = open.remove(&who) {
                    v[i].to = invoked.unwrap_or(at).saturating_add(LOST_RELEASE_GRACE_NS);
                }
            }
            ("acquire", Type::Fail) => failed.entry(key).or_default().push((sent, at)),
            _ => {}
        }
    }
    let mut out = Orphans::default();
    for (key, fails) in failed {
        let mut v = spans.remove(key).unwrap_or_default();
        v.sort_by_key(|s| s.from);
        // The latest end of any hold starting at or before each one.
        let reach: Vec<u64> = v
            .iter()
            .scan(0u64, |m, s| {
                *m = (*m).max(s.to);
                Some(*m)
            })
            .collect();
        let g = grants.get(key).cloned().unwrap_or_default();
        for (sent, at) in fails {
            // Holds that started before the attempt was answered; held if one had not ended.
            let n = v.partition_point(|s| s.from <= at.saturating_add(tol));
            if n > 0 && reach[n - 1].saturating_add(tol) >= sent {
                continue;
            }
            let from = v[..n]
                .iter()
                .map(|s| s.to)
                .filter(|t| *t < sent)
                .max()
                .unwrap_or(sent);
            let next = g.iter().copied().find(|t| *t > at);
            let to = next.unwrap_or(end);
            match out.episodes.last_mut() {
                Some(last) if last.0 == key && last.1 == from => {
                    if to >= last.2 {
                        (last.2, last.3) = (to, next.is_some());
                    }
                }
                _ => out
                    .episodes
                    .push((key.to_string(), from, to, next.is_some())),
            }
        }
    }
    out
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

    fn sent(mut x: Entry, sent: u64) -> Entry {
        x.sent = Some(sent);
        x
    }

    fn released(x: Entry, value: i64) -> Entry {
        let mut x = x;
        x.value = Some(value.into());
        x
    }

    /// `check(history, expected episodes)` for the orphan rule (an episode that reaches the
    /// history's end, 1000, was never granted again).
    fn orphan_case(h: Vec<Entry>, want: &[(&str, u64, u64)]) {
        let got = orphans(&h, Clock::Mono, 1000);
        let want: Vec<(String, u64, u64, bool)> = want
            .iter()
            .map(|w| (w.0.to_string(), w.1, w.2, w.2 < 1000))
            .collect();
        assert_eq!(got.episodes, want);
    }

    #[test]
    fn orphaned_names() {
        use Type::*;
        // Contention: b fails while a holds k; no orphan.
        orphan_case(
            vec![
                sent(e(Ok, "acquire", "a/1", "k", 10, None), 9),
                sent(e(Fail, "acquire", "b/1", "k", 15, None), 14),
                e(Invoke, "release", "a/1", "k", 20, None),
                released(e(Ok, "release", "a/1", "k", 22, None), 1),
                sent(e(Ok, "acquire", "b/1", "k", 25, None), 24),
            ],
            &[],
        );
        // A failed attempt sent before the release was answered: the key may still have been
        // a's (the DEL had not run yet); no orphan.
        orphan_case(
            vec![
                sent(e(Ok, "acquire", "a/1", "k", 10, None), 9),
                e(Invoke, "release", "a/1", "k", 20, None),
                sent(e(Fail, "acquire", "b/1", "k", 23, None), 21),
                released(e(Ok, "release", "a/1", "k", 22, None), 1),
            ],
            &[],
        );
        // A grant sent before the failed attempt was answered explains it (its reply was still on
        // the way); no orphan.
        orphan_case(
            vec![
                sent(e(Ok, "acquire", "a/1", "k", 10, None), 9),
                released(e(Ok, "release", "a/1", "k", 22, None), 1),
                sent(e(Fail, "acquire", "b/1", "k", 31, None), 30),
                sent(e(Ok, "acquire", "c/1", "k", 33, None), 29),
            ],
            &[],
        );
        // The release was answered, yet attempts after it fail until the TTL ends at 500: the
        // server forgot the release (a failover). Blocked from the release to the next grant.
        orphan_case(
            vec![
                sent(e(Ok, "acquire", "a/1", "k", 10, None), 9),
                released(e(Ok, "release", "a/1", "k", 22, None), 1),
                sent(e(Fail, "acquire", "b/1", "k", 60, None), 50),
                sent(e(Fail, "acquire", "c/1", "k", 300, None), 290),
                sent(e(Ok, "acquire", "b/1", "k", 505, None), 501),
            ],
            &[("k", 22, 505)],
        );
        // Never granted again: blocked until the end of the history.
        orphan_case(
            vec![
                sent(e(Ok, "acquire", "a/1", "j", 10, None), 9),
                released(e(Ok, "release", "a/1", "j", 22, None), 1),
                sent(e(Fail, "acquire", "b/1", "j", 60, None), 50),
            ],
            &[("j", 22, 1000)],
        );
        // A release whose reply was lost: its holder may hold the key for the grace after the
        // release was sent; past it, the key is held by nobody (an orphan until its TTL).
        let g = LOST_RELEASE_GRACE_NS;
        orphan_case(
            vec![
                sent(e(Ok, "acquire", "a/1", "k", 10, None), 9),
                e(Invoke, "release", "a/1", "k", 20, None),
                e(Info, "release", "a/1", "k", 22, None),
                sent(e(Fail, "acquire", "b/1", "k", g, None), g - 10),
            ],
            &[],
        );
        let end = 2 * g;
        let got = orphans(
            &[
                sent(e(Ok, "acquire", "a/1", "k", 10, None), 9),
                e(Invoke, "release", "a/1", "k", 20, None),
                e(Info, "release", "a/1", "k", 22, None),
                sent(e(Fail, "acquire", "b/1", "k", g + 60, None), g + 50),
            ],
            Clock::Mono,
            end,
        );
        assert_eq!(got.episodes, vec![("k".to_string(), g + 20, end, false)]);
        // An acquire whose reply was lost holds nothing: a key it set is held by nobody.
        orphan_case(
            vec![
                sent(e(Info, "acquire", "c/1", "m", 70, None), 65),
                sent(e(Fail, "acquire", "b/1", "m", 90, None), 80),
            ],
            &[("m", 80, 1000)],
        );
    }

    #[test]
    fn orphans_are_outages_the_recovery_check_sees() {
        use Type::*;
        // Granted again at 505: an outage that ended; never granted again: one that did not.
        let h = vec![
            sent(e(Ok, "acquire", "a/1", "k", 10, None), 9),
            released(e(Ok, "release", "a/1", "k", 22, None), 1),
            sent(e(Fail, "acquire", "b/1", "k", 60, None), 50),
            sent(e(Ok, "acquire", "b/1", "k", 505, None), 501),
            sent(e(Ok, "acquire", "a/1", "j", 10, None), 9),
            released(e(Ok, "release", "a/1", "j", 22, None), 1),
            sent(e(Fail, "acquire", "b/1", "j", 600, None), 590),
        ];
        let f = findings(&h, Clock::Mono, 1000);
        let got: Vec<(u64, Option<u64>, &str)> = f
            .outages
            .iter()
            .map(|o| (o.from, o.to, o.what.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (22, None, "orphaned lock name j"),
                (22, Some(505), "orphaned lock name k")
            ]
        );
        // Contention only: no outage.
        let h = vec![
            sent(e(Ok, "acquire", "a/1", "k", 10, None), 9),
            sent(e(Fail, "acquire", "b/1", "k", 15, None), 14),
            released(e(Ok, "release", "a/1", "k", 22, None), 1),
        ];
        assert!(findings(&h, Clock::Mono, 1000).outages.is_empty());
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
