//! Rate limiters: no window may admit more than `limit`, judged with the limiter's own window
//! semantics, only where an admission is certainly inside a window (no false alarm from clock
//! or network jitter). Each limiter's `config` entry says which semantics apply.
//!
//! - **fixed-window** / **check-then-incr** (`INCR` + `EXPIRE`): the key of a window is created
//!   by the `INCR` that returned 1, somewhere between its send and its reply, and lives at least
//!   the TTL the limiter set, counted from when its `EXPIRE` was sent. Every admission sent after
//!   the creating reply and answered before that end is certainly inside that window: at most
//!   `limit` of them. An admission whose own `INCR` returned more than `limit` was admitted over it
//!   whatever the timing.
//! - **sliding-log**: server-stamped (µs) admissions; any `window` holds at most `limit`.
//! - **dramatiq-bucket** / **dramatiq-window**: the client computes the bucket: per bucket (or
//!   per `window` seconds of buckets) at most `limit`.
//! - **dramatiq-concurrent**: holds (admission reply → release sent) never more than `limit` at
//!   once.
//!
//! `checked` counts the admissions a rule could judge; 0 of many is inconclusive.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::clock::Clock;
use crate::history::{Entry, Type};
use crate::plan::RateLimitCounter as C;

/// The limiter oracle's findings as the rate-limit workload's counters (none without the
/// history's configuration entry).
pub fn findings(entries: &[Entry], clock: Clock) -> Option<super::findings::Findings> {
    let f = check(entries, &config(entries)?, clock);
    Some(super::findings::Findings {
        events: vec![(C::Overshoot.i(), f.overshoot)],
        levels: vec![(C::OvershootChecked.i(), f.checked)],
        uncertain: 0,
        note: None,
        outages: vec![],
    })
}

/// A limiter's configuration, as its history's `config` entry carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    pub limiter: String,
    pub limit: u64,
    pub window_ms: u64,
}

/// What the checker found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Findings {
    /// Times of admissions beyond the limit.
    pub overshoot: Vec<u64>,
    /// Admissions a rule could judge.
    pub checked: u64,
    pub admitted: u64,
}

#[derive(Debug, Clone, Copy)]
struct Adm {
    sent: u64,
    recv: u64,
    /// The counter an INCR returned, the server timestamp (µs) or the client's bucket.
    count: i64,
    /// When the window key's EXPIRE was sent, and its TTL (ms): creators only.
    expire: Option<(u64, u64)>,
    /// The reply's wall-clock second (for limiters whose window the client computes).
    recv_second: i64,
}

/// The limiter configuration in a history, if any.
pub fn config(entries: &[Entry]) -> Option<Config> {
    entries
        .iter()
        .find(|e| e.f == "config")
        .and_then(|e| serde_json::from_value(e.value.clone()?).ok())
}

/// Check the limiter histories (any number of agents, one limiter configuration).
pub fn check(entries: &[Entry], cfg: &Config, clock: Clock) -> Findings {
    let tol = clock.tolerance();
    let limit = cfg.limit as usize;
    let mut f = Findings::default();
    let mut per_key = admissions(entries, clock, &mut f);
    if cfg.limiter == "dramatiq-concurrent" {
        return concurrent(entries, cfg, clock, f);
    }
    for v in per_key.values_mut() {
        v.sort_by_key(|a| a.sent);
        match cfg.limiter.as_str() {
            "fixed-window" | "check-then-incr" => fixed_window(v, limit, tol, &mut f),
            "sliding-log" => sliding_log(v, limit, cfg.window_ms, &mut f),
            "dramatiq-bucket" => {
                let mut per: HashMap<i64, usize> = HashMap::new();
                for x in v.iter() {
                    *per.entry(x.count).or_default() += 1;
                    if per[&x.count] > limit {
                        f.overshoot.push(x.recv);
                    }
                }
                f.checked += v.len() as u64;
            }
            "dramatiq-window" => dramatiq_window(v, limit, cfg.window_ms, &mut f),
            _ => {}
        }
    }
    f
}

/// Successful admissions per limiter key, counted in `f.admitted`.
fn admissions<'e>(
    entries: &'e [Entry],
    clock: Clock,
    f: &mut Findings,
) -> BTreeMap<&'e str, Vec<Adm>> {
    let mut per_key: BTreeMap<&str, Vec<Adm>> = BTreeMap::new();
    for e in entries
        .iter()
        .filter(|e| e.f == "admit" && e.kind == Type::Ok)
    {
        let Some(key) = e.key.as_deref() else {
            continue;
        };
        f.admitted += 1;
        per_key.entry(key).or_default().push(Adm {
            sent: clock.related(e, e.sent.unwrap_or(e.mono)),
            recv: clock.at(e),
            count: e.fence.unwrap_or(0),
            expire: e
                .aux
                .zip(e.ttl_ms)
                .map(|(at, ttl)| (clock.related(e, at), ttl)),
            recv_second: (e.wall / 1_000_000_000) as i64,
        });
    }
    per_key
}

/// `fixed-window` / `check-then-incr` on one key's admissions, sorted by send time: each
/// creator's window holds at most `limit` of the admissions certainly inside it, and no `INCR`
/// counts past `limit`.
fn fixed_window(v: &[Adm], limit: usize, tol: u64, f: &mut Findings) {
    let mut judged = vec![false; v.len()];
    let mut next_from: Option<u64> = None;
    for (i, a) in v.iter().enumerate().filter(|(_, a)| a.count == 1) {
        let Some((exp_sent, ttl)) = a.expire else {
            continue;
        };
        if next_from.is_some_and(|t| a.sent < t) {
            continue;
        }
        let start = a.recv + tol;
        let end = (exp_sent + ttl * 1_000_000).saturating_sub(tol);
        judged[i] = true;
        let inside: Vec<usize> = v
            .iter()
            .enumerate()
            .filter(|(j, x)| *j != i && x.sent >= start && x.recv <= end)
            .map(|(j, _)| j)
            .collect();
        for j in &inside {
            judged[*j] = true;
        }
        // The creator plus everything certainly inside its window.
        let n = 1 + inside.len();
        if n > limit {
            let mut times: Vec<u64> = inside.iter().map(|j| v[*j].recv).collect();
            times.sort_unstable();
            f.overshoot
                .extend(times.into_iter().skip(limit.saturating_sub(1)));
        }
        next_from = Some(end);
    }
    // Needing no timing at all: an INCR that counted past the limit was admitted
    // over it.
    let past: Vec<u64> = v
        .iter()
        .filter(|x| x.count > limit as i64)
        .map(|x| x.recv)
        .collect();
    for (i, x) in v.iter().enumerate() {
        if x.count > limit as i64 {
            judged[i] = true;
        }
    }
    if past.len() > f.overshoot.len() {
        f.overshoot = past;
    }
    f.checked += judged.iter().filter(|j| **j).count() as u64;
}

/// `sliding-log` on one key: any `window_ms` of server timestamps holds at most `limit`.
fn sliding_log(v: &[Adm], limit: usize, window_ms: u64, f: &mut Findings) {
    let mut ts: Vec<i64> = v.iter().map(|x| x.count).collect();
    ts.sort_unstable();
    let w = (window_ms * 1000) as i64;
    let mut lo = 0;
    for hi in 0..ts.len() {
        while ts[lo] <= ts[hi] - w {
            lo += 1;
        }
        if hi - lo + 1 > limit {
            f.overshoot.push(v[hi].recv);
        }
    }
    f.checked += ts.len() as u64;
}

/// `dramatiq-window` on one key: at most `limit` per window of client-computed seconds.
fn dramatiq_window(v: &[Adm], limit: usize, window_ms: u64, f: &mut Findings) {
    // The client computes its second before it sends. An admission answered in a
    // later second than the one it computed is judged nowhere, by Dramatiq's own
    // races at a boundary: executed after the next second's checks, it was not seen
    // by them; executed a second or more late, it may have found the oldest bucket
    // of its own window expired (the keys live one window from their last write)
    // and counted without it. Every other admission is certainly inside each
    // window that holds its second: at most `limit` per window.
    let w = (window_ms / 1000).max(1) as i64;
    let mut per: HashMap<i64, usize> = HashMap::new();
    let mut judged = 0;
    for x in v.iter().filter(|x| x.recv_second <= x.count) {
        *per.entry(x.count).or_default() += 1;
        judged += 1;
    }
    let mut worst = 0;
    for t in per.keys() {
        let n: usize = (0..w).filter_map(|i| per.get(&(t - i))).sum();
        worst = worst.max(n.saturating_sub(limit));
    }
    f.overshoot.extend(v.iter().take(worst).map(|x| x.recv));
    f.checked += judged;
}

/// Holds of a concurrency limiter never exceed `limit` at once.
fn concurrent(entries: &[Entry], cfg: &Config, clock: Clock, mut f: Findings) -> Findings {
    let mut open: HashMap<(&str, &str), u64> = HashMap::new();
    let mut spans: BTreeMap<&str, Vec<(u64, u64)>> = BTreeMap::new();
    let mut sorted: Vec<&Entry> = entries.iter().collect();
    sorted.sort_by_key(|e| clock.at(e));
    let last = sorted.last().map(|e| clock.at(e)).unwrap_or(0);
    for e in sorted {
        let Some(key) = e.key.as_deref() else {
            continue;
        };
        match (e.f.as_str(), e.kind) {
            ("admit", Type::Ok) => {
                open.insert((e.process.as_str(), key), clock.at(e));
            }
            ("release", Type::Invoke) => {
                if let Some(s) = open.remove(&(e.process.as_str(), key)) {
                    spans.entry(key).or_default().push((s, clock.at(e)));
                }
            }
            _ => {}
        }
    }
    for ((_, key), s) in open {
        spans.entry(key).or_default().push((s, last));
    }
    let tol = clock.tolerance();
    for v in spans.values() {
        // Sweep: +1 at a start, −1 at an end; an end and a start at the same time do not
        // overlap. Starts are moved later and ends earlier by the clock's tolerance.
        let mut pts: Vec<(u64, i32)> = vec![];
        for (s, e) in v {
            let (s, e) = (s + tol, e.saturating_sub(tol));
            if e > s {
                pts.push((s, 1));
                pts.push((e, -1));
            }
        }
        pts.sort_by_key(|p| (p.0, p.1));
        let mut live = 0i64;
        for (t, d) in pts {
            live += d as i64;
            if d > 0 && live > cfg.limit as i64 {
                f.overshoot.push(t);
            }
        }
        f.checked += v.len() as u64;
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adm(key: &str, sent: u64, recv: u64, count: i64, expire: Option<(u64, u64)>) -> Entry {
        Entry {
            kind: Type::Ok,
            f: "admit".into(),
            process: "a/1".into(),
            key: Some(key.into()),
            value: None,
            fence: Some(count),
            sent: Some(sent),
            ttl_ms: expire.map(|e| e.1),
            aux: expire.map(|e| e.0),
            mono: recv,
            wall: recv,
            host: "h".into(),
        }
    }

    const MS: u64 = 1_000_000;

    #[test]
    fn fixed_window_counts_only_what_is_certainly_inside() {
        let cfg = Config {
            limiter: "fixed-window".into(),
            limit: 2,
            window_ms: 1000,
        };
        // Created at [0, 300ms] (a 300 ms round trip), EXPIRE sent at 300 ms with 1 s: certainly
        // alive until 1.3 s. Three more admissions inside: 4 > 2.
        let h = vec![
            adm("k", 0, 300 * MS, 1, Some((300 * MS, 1000))),
            adm("k", 400 * MS, 700 * MS, 2, None),
            adm("k", 500 * MS, 800 * MS, 1, None),
            adm("k", 600 * MS, 900 * MS, 2, None),
        ];
        let f = check(&h, &cfg, Clock::Mono);
        assert_eq!(f.overshoot.len(), 2);
        assert_eq!(f.checked, 4);
        // An admission that might be in the next window is not judged.
        let h = vec![
            adm("k", 0, 300 * MS, 1, Some((300 * MS, 1000))),
            adm("k", 1200 * MS, 1500 * MS, 1, Some((1500 * MS, 1000))),
        ];
        let f = check(&h, &cfg, Clock::Mono);
        assert!(f.overshoot.is_empty());
    }

    #[test]
    fn dramatiq_window_judges_what_was_answered_in_its_own_second() {
        let cfg = Config {
            limiter: "dramatiq-window".into(),
            limit: 3,
            window_ms: 2000,
        };
        const S: u64 = 1_000_000_000;
        // Bucket (the client's second) 10, answered at 10.5 s; bucket 11 at 11.5 s.
        let at = |bucket: i64, recv: u64| adm("k", recv - MS, recv, bucket, None);
        // Planted: 2 in second 10 and 2 in second 11 — 4 in the window [10, 11] > 3.
        let over = vec![
            at(10, 10 * S + S / 2),
            at(10, 10 * S + S / 2 + 1),
            at(11, 11 * S + S / 2),
            at(11, 11 * S + S / 2 + 1),
        ];
        let f = check(&over, &cfg, Clock::Mono);
        assert_eq!(f.overshoot.len(), 1);
        assert_eq!(f.checked, 4);
        // Correct: 2 + 1 in the window [10, 11], then 2 more in 12 (window [11, 12] holds 3).
        let mut ok = over.clone();
        ok.pop();
        ok.push(at(12, 12 * S + S / 2));
        ok.push(at(12, 12 * S + S / 2 + 1));
        let f = check(&ok, &cfg, Clock::Mono);
        assert!(f.overshoot.is_empty(), "{f:?}");
        // Answered in a later second than its bucket (Dramatiq's boundary races): not judged.
        let mut late = over.clone();
        late[3] = at(11, 12 * S + S / 10);
        let f = check(&late, &cfg, Clock::Mono);
        assert!(f.overshoot.is_empty(), "{f:?}");
        assert_eq!(f.checked, 3);
    }

    #[test]
    fn concurrent_holds_never_exceed_the_limit() {
        let cfg = Config {
            limiter: "dramatiq-concurrent".into(),
            limit: 1,
            window_ms: 0,
        };
        let rel = |p: &str, t: u64| Entry {
            kind: Type::Invoke,
            f: "release".into(),
            process: p.into(),
            ..adm("k", t, t, 0, None)
        };
        let mut a2 = adm("k", 5, 6, 0, None);
        a2.process = "b/1".into();
        let h = vec![adm("k", 0, 1, 0, None), rel("a/1", 10), a2, rel("b/1", 20)];
        let f = check(&h, &cfg, Clock::Mono);
        assert_eq!(f.overshoot, vec![6]);
    }
}
